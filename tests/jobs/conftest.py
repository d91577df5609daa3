"""One local Spark session for the whole test session (``local[2]``, 4 shuffle partitions,
no UI), and small real shops to run the jobs on. Skipped, with the reason, where pyspark
or a Java runtime is missing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'shopsense[spark]'")

from shopsense.jobs import java_home

if java_home() is None:
    pytest.skip("Spark needs a Java runtime (17 or 21); none on PATH or JAVA_HOME", allow_module_level=True)

DEMO = REPO / "data" / "demo"

#: small and quick: two cores, few shuffle partitions, no UI, a JVM tuned for short jobs
TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
    "spark.sql.adaptive.enabled": "false",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from shopsense.jobs import postgres_jdbc_jar, spark_session

    jar = postgres_jdbc_jar()  # for the JDBC test; drivers must be on the class path at start
    conf = {**TEST_CONF, **({"spark.jars": str(jar)} if jar else {})}
    with warnings.catch_warnings():
        # pyspark warns that it does not fully support pandas 3 yet (the jobs' conversions work)
        warnings.simplefilter("ignore", FutureWarning)
        session = spark_session("local[2]", "shopsense-tests", **conf)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@dataclass(frozen=True)
class OfficeShop:
    """The demo's Office shop, first ``n_users`` users, each user's last purchase held out."""

    home: Path
    events: Path  # the training events (Parquet)
    held_out: dict[str, str]  # user -> last item


@pytest.fixture(scope="session")
def office(tmp_path_factory) -> OfficeShop:  # type: ignore[no-untyped-def]
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shopsense import Engine

    root = tmp_path_factory.mktemp("office")
    ev = pq.read_table(DEMO / "office_events.parquet")
    user_no = pc.cast(pc.utf8_slice_codeunits(ev["user_id"], 8), "int64")  # 'office-u123' -> 123
    df = ev.filter(pc.less(user_no, 1200)).to_pandas().sort_values(["user_id", "timestamp"], kind="stable")
    last = df.groupby("user_id").tail(1)
    df.drop(last.index).to_parquet(root / "events.parquet")
    with Engine(root / "home") as eng:
        eng.ingest_products(DEMO / "office_products.jsonl")
        eng.ingest_events(root / "events.parquet")
    return OfficeShop(root / "home", root / "events.parquet", dict(zip(last["user_id"], last["item_id"])))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            # pyspark warns on every pandas conversion that it does not fully support pandas 3 yet
            item.add_marker(pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"))
