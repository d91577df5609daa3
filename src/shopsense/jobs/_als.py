"""Collaborative filtering on Spark: MLlib's implicit ALS and popularity counts, handed back
as shopsense's own models (:class:`~shopsense.recommend.ALS`, :class:`~shopsense.recommend.Popularity`,
:class:`~shopsense.recommend.Trending`) so they save and serve like the in-process ones."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shopsense.catalog import EVENT_WEIGHTS
from shopsense.errors import ValidationError, check_param
from shopsense.recommend import ALS, Popularity, Trending

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["fit_als_spark", "interactions_frame", "item_index_frame", "popularity_spark", "read_small"]

log = logging.getLogger(__name__)


def item_index_frame(spark: SparkSession, item_ids: Sequence[str]) -> DataFrame:
    """(item_id, item) for the catalogue's ids in model order: a catalogue-sized frame that
    joins are broadcast with."""
    import pandas as pd

    pdf = pd.DataFrame({"item_id": pd.Series(list(item_ids), dtype=object),
                        "item": np.arange(len(item_ids), dtype=np.int32)})
    return spark.createDataFrame(pdf, schema="item_id string, item int")


def interactions_frame(events: DataFrame, item_ids: Sequence[str],
                       weights: Mapping[str, float] = EVENT_WEIGHTS) -> DataFrame:
    """Events -> (user_id, item, weight, timestamp): known products and positive weights
    only, as the in-process training keeps them."""
    from pyspark.sql import functions as F

    spark = events.sparkSession
    wmap = F.create_map(*[x for t, w in weights.items() for x in (F.lit(t), F.lit(float(w)))])
    ev = (events.where(F.col("item_id").isNotNull())
          .select("user_id", "item_id", F.coalesce(wmap[F.col("type")], F.lit(0.0)).alias("weight"), "timestamp")
          .where(F.col("weight") > 0))
    idx = F.broadcast(item_index_frame(spark, item_ids))
    return ev.join(idx, "item_id").select("user_id", "item", F.col("weight").cast("float").alias("weight"),
                                          "timestamp")


def read_small(df: DataFrame, folder: str | Path) -> pa.Table:
    """A result bounded by the catalogue (item factors, item counts) to the driver: written as
    Parquet by the executors, read with pyarrow, never through ``collect()``."""
    import pyarrow.parquet as pq

    df.write.mode("overwrite").parquet(str(folder))
    return pq.read_table(str(folder))


def _user_index(pairs: DataFrame) -> tuple[DataFrame, int]:
    """(user_id, user) with dense int ids 0..n-1 for MLlib, and n; assigned in the JVM.

    Each distinct user gets its row number within its partition (the low 33 bits of
    ``monotonically_increasing_id``) plus the number of users in the partitions before it;
    only the per-partition counts reach the driver (one row per partition, not per user).
    This replaced ``rdd.zipWithIndex`` through Python, which sent every user id through a
    Python worker and back (three extra jobs and a pickle of every id)."""
    from pyspark.sql import functions as F

    spark = pairs.sparkSession
    # one partition per core, not spark.sql.shuffle.partitions (200): the cached frame keeps its
    # partitions, and two passes over 200 mostly empty ones cost more than the counting itself;
    # persisted so both jobs below see the same ids in the same partitions
    n_parts = max(2, spark.sparkContext.defaultParallelism)
    users = (pairs.select("user_id").repartition(n_parts, "user_id").distinct()
             .select("user_id", F.spark_partition_id().alias("part"),
                     (F.monotonically_increasing_id().bitwiseAND(F.lit((1 << 33) - 1))).alias("row"))
             .persist())
    counts = sorted((int(r["part"]), int(r["count"])) for r in users.groupBy("part").count().collect())
    offsets, total = [], 0
    for part, n in counts:
        offsets.append((part, total))
        total += n
    off = spark.createDataFrame(offsets or [(0, 0)], schema="part int, offset long")
    index = users.join(F.broadcast(off), "part").select("user_id", (F.col("offset") + F.col("row")).alias("user"))
    return index, total


def fit_als_spark(events: DataFrame, item_ids: Sequence[str], rank: int = 64, reg: float = 0.01,
                  iters: int = 15, alpha: float = 40.0, *, binary: bool = True, seed: int = 0,
                  fold_in_regularization: float | None = None, num_blocks: int | None = None,
                  workdir: str | Path | None = None, progress: Callable[[str], None] | None = None) -> ALS:
    """Fit ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` on ``events`` and return a
    fitted shopsense :class:`~shopsense.recommend.ALS` holding its item factors.

    ``events`` has :data:`~shopsense.jobs.EVENT_COLUMNS` (see :func:`events_frame`);
    ``item_ids`` is the catalogue in model order (row ``i`` of the factors is ``item_ids[i]``;
    items without events get zero factors, as ``implicit`` gives them). shopsense's ALS keeps
    only item factors and folds users in at query time, so nothing per user leaves Spark.

    Objectives. With ``binary`` (the in-process default) each user-item pair has r = 1 and MLlib
    is given ``alpha - 1``: its confidence 1 + (alpha - 1) r equals the ``alpha * r`` that
    ``implicit`` and the fold-in use. MLlib scales ``reg`` by each user's and item's number
    of interactions (ALS-WR), ``implicit`` does not: the fold-in's ridge is
    ``fold_in_regularization``, by default ``reg`` times the mean interactions per user.

    Example
    -------
    >>> spark = spark_session("local[2]")                                  # doctest: +SKIP
    >>> als = fit_als_spark(events_frame(spark, store), catalog.ids, rank=32)  # doctest: +SKIP
    >>> als.recommend([np.array([3, 7])], k=10).indices                   # doctest: +SKIP
    """
    return _fit_als_interactions(interactions_frame(events, item_ids), item_ids, rank=rank, reg=reg, iters=iters,
                                 alpha=alpha, binary=binary, seed=seed,
                                 fold_in_regularization=fold_in_regularization, num_blocks=num_blocks,
                                 workdir=workdir, progress=progress)


def _fit_als_interactions(inter: DataFrame, item_ids: Sequence[str], rank: int = 64, reg: float = 0.01,
                          iters: int = 15, alpha: float = 40.0, *, binary: bool = True, seed: int = 0,
                          fold_in_regularization: float | None = None, num_blocks: int | None = None,
                          workdir: str | Path | None = None,
                          progress: Callable[[str], None] | None = None) -> ALS:
    """:func:`fit_als_spark` on an :func:`interactions_frame` the caller already has (and may
    have persisted: ``train_spark`` reuses it for popularity instead of reading the events twice)."""
    from pyspark.ml.recommendation import ALS as SparkALS
    from pyspark.sql import functions as F

    owner = "fit_als_spark"
    check_param("rank", rank, isinstance(rank, (int, np.integer)) and rank >= 1, "an int >= 1", owner)
    check_param("reg", reg, reg >= 0, "a float >= 0", owner)
    check_param("iters", iters, isinstance(iters, (int, np.integer)) and iters >= 1, "an int >= 1", owner)
    check_param("alpha", alpha, alpha > (1.0 if binary else 0.0),
                "a float > 1 with binary=True (MLlib gets alpha - 1)" if binary else "a float > 0", owner)
    say = progress or (lambda m: None)
    sc = inter.sparkSession.sparkContext
    with tempfile.TemporaryDirectory(prefix="shopsense-als-", dir=workdir) as tmp:
        pairs = inter.groupBy("user_id", "item").agg(F.sum("weight").alias("w"))
        ratings_col = F.lit(1.0) if binary else F.col("w")
        users, n_users = _user_index(pairs)
        if n_users >= 2**31 - 1:
            raise ValidationError("MLlib ALS takes at most 2^31 - 1 users", field="events")
        ratings = (pairs.join(users, "user_id")
                   .select(F.col("user").cast("int").alias("user"), "item", ratings_col.cast("float").alias("rating"))
                   .persist())
        stats = ratings.agg(F.count(F.lit(1)).alias("n"), F.max("user").alias("max_user")).first()
        users.unpersist()
        n_pairs = int(stats["n"]) if stats is not None else 0
        if n_pairs and int(stats["max_user"]) != n_users - 1:  # type: ignore[index]
            raise RuntimeError(f"the ALS user index is not dense: {n_users} users, largest id {stats['max_user']}")
        if n_pairs == 0:
            ratings.unpersist()
            raise ValidationError("No usable events (view/click/cart/purchase on known products) to fit ALS on.",
                                  field="events")
        say(f"als: {n_pairs:,} user-item pairs, {n_users:,} users, {len(item_ids):,} items")
        if sc.getCheckpointDir() is None:  # long lineages of many iterations are cut every 10
            sc.setCheckpointDir(str(Path(tmp) / "checkpoints"))
        blocks = num_blocks or max(2, sc.defaultParallelism)
        als = SparkALS(rank=int(rank), maxIter=int(iters), regParam=float(reg),
                       alpha=float(alpha - 1.0 if binary else alpha), implicitPrefs=True, userCol="user",
                       itemCol="item", ratingCol="rating", seed=int(seed), numUserBlocks=blocks,
                       numItemBlocks=blocks, checkpointInterval=10)
        model = als.fit(ratings)
        table = read_small(model.itemFactors, Path(tmp) / "item_factors")
        ratings.unpersist()
    factors = np.zeros((len(item_ids), rank), np.float32)
    ids = table.column("id").to_numpy()
    if len(ids):
        factors[ids] = np.asarray(table.column("features").to_pylist(), np.float32)
    fold_reg = float(reg * n_pairs / max(n_users, 1)) if fold_in_regularization is None else fold_in_regularization
    out = ALS(factors=int(rank), regularization=fold_reg, alpha=float(alpha), iterations=int(iters),
              binary=binary, random_state=int(seed))
    # learned state, as ALS.fit leaves it: item factors only (users fold in at query time)
    out.item_factors_ = factors
    out.n_items_ = len(item_ids)
    return out


def popularity_spark(interactions: DataFrame, n_items: int, *, half_life: float | None = None,
                     workdir: str | Path | None = None) -> Popularity:
    """Summed interaction weight per item with Spark SQL, as :class:`Popularity` (or, with
    ``half_life`` seconds, :class:`Trending`: weights decay from the newest event) fits it."""
    from pyspark.sql import functions as F

    weight = F.col("weight")
    t_max = 0.0
    if half_life is not None:
        row = interactions.agg(F.max("timestamp").alias("t")).first()
        t_max = float(row["t"]) if row is not None and row["t"] is not None else 0.0
        weight = weight * F.pow(F.lit(2.0), -(F.lit(t_max) - F.col("timestamp")) / F.lit(float(half_life)))
    counts = interactions.groupBy("item").agg(F.sum(weight).alias("score"))
    with tempfile.TemporaryDirectory(prefix="shopsense-pop-", dir=workdir) as tmp:
        table = read_small(counts, Path(tmp) / "counts")
    scores = np.zeros(n_items, np.float64)
    scores[table.column("item").to_numpy()] = table.column("score").to_numpy()
    model: Popularity = Popularity() if half_life is None else Trending(half_life=half_life)
    model.item_scores_ = scores.astype(np.float32)
    model.n_items_ = n_items
    if isinstance(model, Trending):
        model.t_max_ = t_max
    return model
