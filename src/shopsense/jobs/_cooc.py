"""Co-purchase mining on Spark: baskets, item-pair counts, support / confidence / lift with
Spark SQL, and MLlib's FP-Growth as the association-rule peer.

A basket is what :func:`shopsense.bundles.baskets_from_events` calls one: the add-to-cart and
purchase events of one ``session_id``, or of one user's UTC calendar day when the event has
no session; an item counts once per basket; products not in the catalogue are skipped. The
counts and their definitions are those of :class:`shopsense.bundles.CoPurchase`, so the
result loads into one (:func:`load_copurchase`) and the tests compare them pair by pair.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsense.bundles import BASKET_EVENT_TYPES, CoPurchase
from shopsense.errors import check_param
from shopsense.jobs._als import item_index_frame
from shopsense.jobs._context import Say, job_context, job_session, sayer
from shopsense.jobs._session import spark_progress
from shopsense.jobs._source import events_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["CoOccurrence", "FrequentItemsets", "baskets_frame", "cooccurrence_spark", "fpgrowth_spark",
           "load_copurchase", "mine_cooccurrence"]

log = logging.getLogger(__name__)

COOC_FORMAT = "shopsense.cooccurrence"


def baskets_frame(events: DataFrame, item_ids: Sequence[str], types: Sequence[str] = BASKET_EVENT_TYPES,
                  half_life_days: float | None = None) -> DataFrame:
    """(basket, item, time, w): one row per item of a basket; ``time`` is the basket's latest
    event, ``w`` its weight (1, or 0.5 ** (age in days / ``half_life_days``) from the newest
    basket, as :func:`shopsense.bundles.decay_weights`)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    idx = F.broadcast(item_index_frame(events.sparkSession, item_ids))
    sess = F.col("session_id")
    key = F.when(sess.isNotNull() & (sess != ""), F.concat(F.lit("s:"), sess)).otherwise(
        F.concat(F.lit("u:"), F.coalesce(F.col("user_id"), F.lit("")), F.lit(":"),
                 F.floor(F.col("timestamp") / 86400.0).cast("long").cast("string")))
    ev = (events.where(F.col("type").isin(list(types)) & F.col("item_id").isNotNull())
          .join(idx, "item_id").select(key.alias("basket"), "item", "timestamp"))
    rows = ev.groupBy("basket", "item").agg(F.max("timestamp").alias("t"))
    rows = rows.withColumn("time", F.max("t").over(Window.partitionBy("basket"))).drop("t")
    if half_life_days is None:
        return rows.withColumn("w", F.lit(1.0))
    check_param("half_life_days", half_life_days, half_life_days > 0, "a float > 0 or None", "baskets_frame")
    newest = rows.agg(F.max("time").alias("t")).first()
    ref = float(newest["t"]) if newest is not None and newest["t"] is not None else 0.0
    age = F.greatest(F.lit(ref) - F.col("time"), F.lit(0.0)) / 86400.0
    return rows.withColumn("w", F.pow(F.lit(0.5), age / F.lit(float(half_life_days))))


@dataclass
class CoOccurrence:
    """Item-pair statistics as Spark frames (nothing collected): ``pairs`` holds one row per
    unordered pair i < j with ``count`` >= ``min_support`` (count, weight, support, lift,
    confidence both ways); ``items`` one row per item in some basket (count, weight)."""

    pairs: DataFrame
    items: DataFrame
    n_baskets: int
    total_weight: float
    n_items: int
    min_support: int

    def write(self, folder: str | Path) -> Path:
        """``pairs/`` and ``items/`` as Parquet, and ``manifest.json`` with the totals."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.pairs.write.mode("overwrite").parquet(str(folder / "pairs"))
        self.items.write.mode("overwrite").parquet(str(folder / "items"))
        (folder / "manifest.json").write_text(json.dumps({
            "format": COOC_FORMAT, "format_version": 1, "n_baskets": self.n_baskets,
            "total_weight": self.total_weight, "n_items": self.n_items, "min_support": self.min_support,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
        return folder


def cooccurrence_spark(events: DataFrame, item_ids: Sequence[str], *, min_support: int = 2,
                       half_life_days: float | None = None,
                       types: Sequence[str] = BASKET_EVENT_TYPES) -> CoOccurrence:
    """Pair counts within baskets, with Spark SQL (a self-join of the basket rows).

    ``count`` is the number of baskets holding both items, ``weight`` the same with decayed
    basket weights (equal to ``count`` without ``half_life_days``); a pair is kept when its
    raw ``count`` reaches ``min_support``. ``support = weight / W``, ``confidence_ij =
    weight / weight_i``, ``lift = weight * W / (weight_i * weight_j)``, W the total basket
    weight, as :class:`shopsense.bundles.CoPurchase` defines them.

    Example
    -------
    >>> cooc = cooccurrence_spark(events_frame(spark, store), catalog.ids, min_support=2)  # doctest: +SKIP
    >>> cooc.write("home/jobs/cooccurrence")                                              # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    check_param("min_support", min_support, isinstance(min_support, int) and min_support >= 1, "an int >= 1",
                "cooccurrence_spark")
    b = baskets_frame(events, item_ids, types, half_life_days).persist()
    per_basket = b.groupBy("basket").agg(F.max("w").alias("w"))  # one weight per basket
    tot = per_basket.agg(F.count(F.lit(1)).alias("n"), F.sum("w").alias("w")).first()
    n_baskets = int(tot["n"]) if tot is not None else 0
    total_weight = max(float(tot["w"] or 0.0) if tot is not None else 0.0, 1e-12)
    items = b.groupBy("item").agg(F.count(F.lit(1)).alias("count"), F.sum("w").alias("weight"))
    left = b.select("basket", F.col("item").alias("i"), "w")
    right = b.select("basket", F.col("item").alias("j"))
    pairs = (left.join(right, "basket").where(F.col("i") < F.col("j"))
             .groupBy("i", "j").agg(F.count(F.lit(1)).alias("count"), F.sum("w").alias("weight"))
             .where(F.col("count") >= min_support))
    wi = items.select(F.col("item").alias("i"), F.col("weight").alias("weight_i"))
    wj = items.select(F.col("item").alias("j"), F.col("weight").alias("weight_j"))
    pairs = (pairs.join(wi, "i").join(wj, "j")
             .select("i", "j", "count", "weight",
                     (F.col("weight") / F.lit(total_weight)).alias("support"),
                     (F.col("weight") / F.col("weight_i")).alias("confidence_ij"),
                     (F.col("weight") / F.col("weight_j")).alias("confidence_ji"),
                     (F.col("weight") * F.lit(total_weight) / (F.col("weight_i") * F.col("weight_j"))).alias("lift")))
    return CoOccurrence(pairs=pairs, items=items, n_baskets=n_baskets, total_weight=total_weight,
                        n_items=len(item_ids), min_support=min_support)


def load_copurchase(folder: str | Path) -> CoPurchase:
    """A fitted :class:`~shopsense.bundles.CoPurchase` from :meth:`CoOccurrence.write`'s folder
    (the serving side: the pair table is what an in-process fit would hold)."""
    import pyarrow.parquet as pq
    from scipy import sparse

    folder = Path(folder)
    meta = json.loads((folder / "manifest.json").read_text())
    n = int(meta["n_items"])
    pairs = pq.read_table(folder / "pairs", columns=["i", "j", "weight"])
    items = pq.read_table(folder / "items", columns=["item", "count", "weight"])
    i = pairs.column("i").to_numpy()
    j = pairs.column("j").to_numpy()
    w = pairs.column("weight").to_numpy().astype(np.float64)
    pc = sparse.csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
                           shape=(n, n), dtype=np.float64)
    cp = CoPurchase(min_support=int(meta["min_support"]))
    counts = np.zeros(n, np.float64)
    weights = np.zeros(n, np.float64)
    it = items.column("item").to_numpy()
    counts[it] = items.column("count").to_numpy()
    weights[it] = items.column("weight").to_numpy()
    cp.item_counts_, cp.item_weights_, cp.pair_counts_ = counts, weights, pc
    cp.n_baskets_, cp.total_weight_, cp.n_items_ = int(meta["n_baskets"]), float(meta["total_weight"]), n
    return cp


@dataclass
class FrequentItemsets:
    """FP-Growth's output as Spark frames: ``itemsets`` (items, freq) and ``rules``
    (antecedent, consequent, confidence, lift, support), item indices of the catalogue."""

    itemsets: DataFrame
    rules: DataFrame
    n_baskets: int
    min_count: int

    def write(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.itemsets.write.mode("overwrite").parquet(str(folder / "itemsets"))
        self.rules.write.mode("overwrite").parquet(str(folder / "rules"))
        (folder / "manifest.json").write_text(json.dumps({
            "format": "shopsense.fpgrowth", "format_version": 1, "n_baskets": self.n_baskets,
            "min_count": self.min_count}, indent=2))
        return folder


def fpgrowth_spark(events: DataFrame, item_ids: Sequence[str], *, min_count: int = 2,
                   min_confidence: float = 0.1, types: Sequence[str] = BASKET_EVENT_TYPES,
                   num_partitions: int | None = None) -> FrequentItemsets:
    """Frequent itemsets and association rules with ``pyspark.ml.fpm.FPGrowth`` over the same
    baskets as :func:`cooccurrence_spark`; an itemset is kept when at least ``min_count``
    baskets hold it (so its pairs are exactly the co-occurrence pairs with count >= min_count)."""
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import functions as F

    check_param("min_count", min_count, isinstance(min_count, int) and min_count >= 1, "an int >= 1",
                "fpgrowth_spark")
    check_param("min_confidence", min_confidence, 0.0 <= min_confidence <= 1.0, "a float in [0, 1]",
                "fpgrowth_spark")
    baskets = (baskets_frame(events, item_ids, types).groupBy("basket")
               .agg(F.collect_set("item").alias("items")).persist())
    n_baskets = baskets.count()
    # FPGrowth keeps itemsets with freq >= ceil(minSupport * n); half a basket below min_count
    # makes that ceil exactly min_count whatever the floating-point rounding
    support = (min_count - 0.5) / max(n_baskets, 1)
    assert n_baskets == 0 or math.ceil(support * n_baskets) == min_count
    fp = FPGrowth(itemsCol="items", minSupport=min(support, 1.0), minConfidence=float(min_confidence))
    if num_partitions:
        fp = fp.setNumPartitions(int(num_partitions))
    model = fp.fit(baskets)
    return FrequentItemsets(itemsets=model.freqItemsets, rules=model.associationRules, n_baskets=n_baskets,
                            min_count=min_count)


def mine_cooccurrence(target: Any, out: str | Path | None = None, progress: bool | Say = False, *,
                      spark: SparkSession | None = None, master: str | None = None, min_support: int = 2,
                      half_life_days: float | None = None, fpgrowth: bool = True,
                      min_confidence: float = 0.1) -> dict[str, Any]:
    """The co-occurrence job on a shop: read its events, write ``pairs/`` (see
    :meth:`CoOccurrence.write`, loadable with :func:`load_copurchase`) and, with ``fpgrowth``,
    ``fpgrowth/`` under ``out`` (default ``home/jobs/cooccurrence``). ``target`` is the engine
    or a home folder; Spark as in :func:`~shopsense.jobs.train_spark`. Returns a summary."""
    say = sayer(progress)
    t0 = time.perf_counter()
    with job_context(target) as ctx:
        folder = Path(out) if out is not None else ctx.paths.root / "jobs" / "cooccurrence"
        ids = list(ctx.catalog().ids)
        with job_session(ctx, spark, master, "shopsense-cooccurrence") as session, \
                tempfile.TemporaryDirectory(prefix="shopsense-cooc-") as work, spark_progress(session, say):
            events = events_frame(session, ctx.store, workdir=work)
            say("counting item pairs in baskets")
            cooc = cooccurrence_spark(events, ids, min_support=min_support, half_life_days=half_life_days)
            cooc.write(folder / "pairs")
            summary: dict[str, Any] = {"folder": str(folder), "n_baskets": cooc.n_baskets, "n_items": len(ids),
                                       "min_support": min_support}
            say(f"{cooc.n_baskets:,} baskets; pairs written to {folder / 'pairs'}")
            if fpgrowth:
                say("mining FP-Growth itemsets and rules")
                fpgrowth_spark(events, ids, min_count=min_support, min_confidence=min_confidence) \
                    .write(folder / "fpgrowth")
                say(f"FP-Growth written to {folder / 'fpgrowth'}")
    summary["seconds"] = time.perf_counter() - t0
    return summary
