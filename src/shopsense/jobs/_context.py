"""What a job runs against: an engine (any :class:`~shopsense.context.ShopContext`) or a
home folder opened for the job alone; and the Spark session it runs in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopsense.catalog import Catalog
from shopsense.config import Settings
from shopsense.home import Home
from shopsense.jobs._session import postgres_jdbc_jar, require_spark, spark_session
from shopsense.store import PostgresStore, Store, open_store

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Say = Callable[[str], None]


@dataclass
class HomeContext:
    """A home opened by a job: settings, paths, store and a catalogue snapshot."""

    settings: Settings
    paths: Home
    store: Store
    _catalog: Catalog | None = field(default=None, repr=False)

    @classmethod
    def open(cls, home: str | Path | Home) -> HomeContext:
        settings = Settings.load(Path(home))
        paths = Home(settings.home)
        return cls(settings, paths, open_store(settings, paths.sqlite))

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog([p for batch in self.store.iter_products(5000) for p in batch])
        return self._catalog


@contextmanager
def job_context(target: Any) -> Iterator[Any]:
    """``target`` itself when it is a shop context (the engine), else its home opened for the
    job and closed after it."""
    if all(hasattr(target, a) for a in ("settings", "paths", "store", "catalog")):
        yield target
        return
    ctx = HomeContext.open(target)
    try:
        yield ctx
    finally:
        ctx.store.close()


@contextmanager
def job_session(ctx: Any, spark: SparkSession | None, master: str | None, app_name: str,
                conf: dict[str, Any] | None = None) -> Iterator[SparkSession]:
    """``spark`` when given (left running), else a session on ``master`` or
    ``Settings.spark_master`` with ``Settings.spark_conf``, stopped after the job."""
    if spark is not None:
        yield spark
        return
    require_spark()  # the pip hint (or the Java hint) before anything imports pyspark
    from pyspark.sql import SparkSession

    # a session already running in this process (a notebook's, a test's) is used and left running
    running = SparkSession.getActiveSession()
    settings = ctx.settings
    full = {**dict(getattr(settings, "spark_conf", {}) or {}), **(conf or {})}
    jar = postgres_jdbc_jar() if isinstance(ctx.store, PostgresStore) else None
    if jar is not None and "spark.jars" not in full:
        full["spark.jars"] = str(jar)
    session = spark_session(master or getattr(settings, "spark_master", "local[*]"), app_name, **full)
    try:
        yield session
    finally:
        if running is None:
            session.stop()


def sayer(progress: bool | Say) -> Say:
    if callable(progress):
        return progress
    return (lambda m: print(m, flush=True)) if progress else (lambda m: None)


def now_version() -> str:
    """A model version name, in the form the in-process training uses (UTC time, then pid)."""
    import os

    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid() % 10000:04d}"
