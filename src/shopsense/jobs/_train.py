"""``train_spark``: the recommendation models fitted on Spark and saved as the same versioned
model folder (``home/models/<version>/`` + ``CURRENT``) that serving loads."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopsense.errors import NotFittedError, ValidationError
from shopsense.home import Home
from shopsense.jobs._als import _fit_als_interactions, interactions_frame, popularity_spark
from shopsense.jobs._context import Say, job_context, job_session, now_version, sayer
from shopsense.jobs._session import spark_progress
from shopsense.jobs._source import events_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from shopsense.recommend import Recommender

__all__ = ["train_spark"]

log = logging.getLogger(__name__)

#: the trending model's half-life, as the in-process training sets it
TRENDING_HALF_LIFE_S = 7 * 86400.0


def train_spark(target: Any, progress: bool | Say = False, *, spark: SparkSession | None = None,
                master: str | None = None, rank: int | None = None, reg: float = 0.01, iters: int = 15,
                alpha: float = 40.0, binary: bool = True, seed: int = 0,
                conf: dict[str, Any] | None = None, events: str | Path | None = None) -> dict[str, Any]:
    """Fit ALS (MLlib), popularity and trending (Spark SQL) on the stored events and save
    them as a new model version of the home, made current. Returns the manifest.

    ``target`` is the engine (any :class:`~shopsense.context.ShopContext`) or a home folder.
    Spark runs on ``spark`` when given, else a session is started on ``master`` (default
    ``Settings.spark_master``, ``local[*]``) with ``Settings.spark_conf`` + ``conf`` and
    stopped afterwards. ``rank`` defaults to the in-process rule, min(128, max(8, n_items // 4)).
    The folder holds ``als`` (primary), ``popularity`` and ``trending`` in the
    :meth:`Recommender.save <shopsense.recommend.Recommender.save>` format, ``item_ids.json``
    and ``manifest.json`` (``"engine": "spark"``); it is written to a temporary folder and
    renamed, then ``models/CURRENT`` is replaced, so serving never sees half a version.

    ``events`` (a Parquet file or folder of :data:`~shopsense.jobs.EVENT_COLUMNS`; session and
    quantity may be missing) trains on those events instead of the store's: what the job reads
    from a SQLite store is such an export (:func:`~shopsense.jobs.export_events_parquet`), so a
    shop whose events already land in Parquet (a lake, a previous export) skips the export. The
    manifest's ``spark.events`` says which source was read, and ``spark.seconds`` what each step cost.

    Example
    -------
    >>> manifest = train_spark("shopsense_home", progress=print)        # doctest: +SKIP
    >>> Engine("shopsense_home").recommend("user-1").ids                 # doctest: +SKIP
    """
    say = sayer(progress)
    source = None
    if events is not None:
        source = Path(events)
        if not (source.suffix == ".parquet" and source.is_file()) and \
                not (source.is_dir() and any(source.glob("*.parquet"))):
            raise ValidationError(f"The 'events' parameter of train_spark must be a Parquet file or a folder of "
                                  f"Parquet files. Got {str(events)!r} instead.", field="events")
    t0 = time.perf_counter()
    with job_context(target) as ctx:
        catalog = ctx.catalog()
        if len(catalog) == 0:
            raise NotFittedError("No products in the store; ingest products before training.")
        item_ids = list(catalog.ids)
        n_rank = rank or min(128, max(8, len(item_ids) // 4))
        with job_session(ctx, spark, master, "shopsense-train", conf) as session, \
                tempfile.TemporaryDirectory(prefix="shopsense-train-") as work, spark_progress(session, say):
            say(f"spark {session.version} on {session.sparkContext.master}: reading events")
            s = time.perf_counter()
            # a SQLite store is exported to Parquet here (streamed, single reader); PostgreSQL
            # is read over JDBC when the driver jar is present
            frame = events_frame(session, ctx.store if source is None else source, workdir=work)
            seconds = {"catalog_and_session": s - t0, "export": time.perf_counter() - s}
            s = time.perf_counter()
            # the interactions are computed once and kept for ALS, popularity and trending
            # (ALS used to read and join the events again from the export)
            inter = interactions_frame(frame, item_ids).persist()
            from pyspark.sql import functions as F

            row = inter.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("user_id").alias("u")).first()
            n_inter, n_users = (int(row["n"]), int(row["u"])) if row is not None else (0, 0)
            seconds["interactions"] = time.perf_counter() - s
            say(f"events: {n_inter:,} interactions, {n_users:,} users, {len(item_ids):,} items")
            if n_inter == 0:
                raise NotFittedError("No usable events (view/click/cart/purchase on known products); "
                                     "ingest events first.")
            s = time.perf_counter()
            als = _fit_als_interactions(inter, item_ids, rank=n_rank, reg=reg, iters=iters, alpha=alpha,
                                        binary=binary, seed=seed, workdir=work, progress=say)
            seconds["als"] = time.perf_counter() - s
            say(f"  fitted als (rank {n_rank}, {iters} iterations) in {seconds['als']:.1f}s")
            s = time.perf_counter()
            models: dict[str, Recommender] = {
                "als": als,
                "popularity": popularity_spark(inter, len(item_ids), workdir=work),
                "trending": popularity_spark(inter, len(item_ids), half_life=TRENDING_HALF_LIFE_S, workdir=work),
            }
            seconds["popularity_trending"] = time.perf_counter() - s
            say(f"  counted popularity and trending in {seconds['popularity_trending']:.1f}s")
            inter.unpersist()
            spark_info = {"version": session.version, "master": session.sparkContext.master,
                          "events": "store" if source is None else str(source), "seconds": seconds,
                          "params": {"rank": n_rank, "reg": reg, "iters": iters, "alpha": alpha, "binary": binary,
                                     "seed": seed}}
        manifest = save_version(ctx.paths, models, "als", item_ids,
                                {"n_users": n_users, "n_interactions": n_inter,
                                 "train_seconds": time.perf_counter() - t0, "engine": "spark", "spark": spark_info})
    say(f"saved model version {manifest['version']} in {time.perf_counter() - t0:.1f}s")
    return manifest


def save_version(paths: Home, models: dict[str, Recommender], primary: str, item_ids: list[str],
                 extra: dict[str, Any]) -> dict[str, Any]:
    """Write ``models/<version>/`` the way the in-process training does (the layout the
    recommend service loads): one folder per model, ``item_ids.json``, ``manifest.json``;
    through a temp folder, then ``models/CURRENT`` replaced. Returns the manifest."""
    version = now_version()
    paths.models.mkdir(parents=True, exist_ok=True)
    tmp = paths.models / f".tmp-{version}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, m in models.items():
        m.save(tmp / name)
    (tmp / "item_ids.json").write_text(json.dumps(item_ids))
    manifest = {"version": version, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "primary": primary, "models": sorted(models), "n_items": len(item_ids), "metrics": {},
                "format": "shopsense.recommend", "format_version": 1, **extra}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, paths.model_version(version))  # a half-written version is never visible under its name
    ptr = paths.models / ".CURRENT.tmp"
    ptr.write_text(version)
    os.replace(ptr, paths.models_current)
    log.info("saved model version %s (%s)", version, ", ".join(sorted(models)))
    return manifest
