"""The Spark session every job runs in, and the checks that fail early with a clear message."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopsense.errors import ShopsenseError, require

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkUnavailableError", "java_home", "postgres_jdbc_jar", "require_spark", "spark_progress",
           "spark_session"]

log = logging.getLogger(__name__)

#: applied unless the caller (or ``Settings.spark_conf``) says otherwise
DEFAULT_CONF: dict[str, str] = {
    # the jobs report their own progress (spark_progress); Spark's bar would interleave with it
    "spark.ui.showConsoleProgress": "false",
    # basket days and time decay are computed in UTC, as the in-process miners do
    "spark.sql.session.timeZone": "UTC",
    # MLlib runs one BLAS call per task and core: a multi-threaded native BLAS underneath only
    # oversubscribes the executors (Spark's own advice for ALS)
    "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
}


class SparkUnavailableError(ShopsenseError, RuntimeError):
    """pyspark is installed but cannot start: no Java runtime."""


def java_home() -> str | None:
    """The Java runtime Spark will start (``JAVA_HOME`` first, then ``java`` on the PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return home
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


def require_spark() -> Any:
    """Import pyspark or fail with the pip hint; fail as clearly when no Java is installed."""
    pyspark = require("pyspark", "spark")
    if java_home() is None:
        raise SparkUnavailableError(
            "Spark needs a Java runtime (17 or 21) and none was found: install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME.")
    return pyspark


def postgres_jdbc_jar() -> Path | None:
    """A PostgreSQL JDBC driver jar already on this machine, or None.

    Looked up in ``$SHOPSENSE_JDBC_JAR``, the local Maven repository and ``/usr/share/java``;
    nothing is downloaded (Maven Central may not be reachable from a shop's servers), and
    without a jar the jobs read PostgreSQL through a Parquet export instead."""
    env = os.environ.get("SHOPSENSE_JDBC_JAR")
    if env and Path(env).is_file():
        return Path(env)
    roots = [Path.home() / ".m2" / "repository" / "org" / "postgresql" / "postgresql", Path("/usr/share/java")]
    found = sorted(p for r in roots if r.is_dir() for p in r.rglob("postgresql*.jar")
                   if "sources" not in p.name and "javadoc" not in p.name)
    return found[-1] if found else None


def spark_session(master: str = "local[*]", app_name: str = "shopsense", **conf: Any) -> SparkSession:
    """A Spark session on ``master`` (``local[*]`` on one machine, any cluster URL in production).

    ``conf`` holds Spark configuration keys, passed as a mapping because they contain dots.
    A session already running in this process is returned as it is (Spark allows one per JVM).

    Example
    -------
    >>> spark = spark_session("local[2]", "shopsense-tests",
    ...                       **{"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"})  # doctest: +SKIP
    """
    require_spark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**DEFAULT_CONF, **{k: str(v) for k, v in conf.items()}}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # local Python workers run this interpreter (the one with shopsense and pyarrow installed)
        # instead of whatever 'python3' is first on the PATH; on a cluster the executors' Python
        # is the cluster's configuration (PYSPARK_PYTHON / spark.pyspark.python)
        sc.pythonExec = sys.executable
    log.info("spark %s session on %s (%s)", spark.version, sc.master, sc.applicationId)
    return spark


@contextmanager
def spark_progress(spark: SparkSession, say: Callable[[str], None], every_s: float = 1.0) -> Iterator[None]:
    """Report the running stages' task counts through ``say`` while the block runs
    (polls Spark's status tracker; a line only when the counts change)."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    last: dict[int, tuple[int, int]] = {}

    def poll() -> None:
        while not stop.wait(every_s):
            try:
                for sid in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(sid)
                    if info is None:
                        continue
                    now = (info.numCompletedTasks, info.numTasks)
                    if last.get(sid) != now:
                        last[sid] = now
                        say(f"  spark stage {sid} ({info.name.split(' at ')[0]}): {now[0]}/{now[1]} tasks")
            except Exception:  # progress must never break the job it reports on
                log.debug("spark progress poll failed", exc_info=True)

    thread = threading.Thread(target=poll, name="shopsense-spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s * 2)
