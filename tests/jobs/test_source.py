"""Events into Spark: the SQLite store's Parquet export, the demo's Parquet, PostgreSQL over
JDBC and through the export; the errors that name what to install."""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow.parquet as pq
import pytest

from shopsense.errors import MissingDependencyError, ValidationError
from shopsense.jobs import (
    EVENT_COLUMNS,
    SparkUnavailableError,
    events_frame,
    export_events_parquet,
    jdbc_options,
    postgres_jdbc_jar,
    require_spark,
)
from shopsense.store import SQLiteStore


def test_sqlite_export_streams_every_event_in_order(office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SQLiteStore(office.home / "store.sqlite3")
    try:
        n = export_events_parquet(store, tmp_path / "ev", batch_size=1000, rows_per_file=5000)
        ev = store.events()
    finally:
        store.close()
    files = sorted((tmp_path / "ev").glob("*.parquet"))
    table = pq.read_table(tmp_path / "ev")
    assert n == len(ev) == table.num_rows > 10_000 and len(files) == -(-n // 5000)
    assert tuple(table.column_names) == EVENT_COLUMNS
    order = np.argsort(table.column("timestamp").to_numpy(), kind="stable")  # the store's time order
    assert table.column("item_id").to_numpy(zero_copy_only=False)[order].tolist() == list(ev.item_id)
    assert set(table.column("user_id").to_pylist()) == set(ev.user_id)


def test_events_frame_reads_the_store_and_plain_parquet(spark, office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SQLiteStore(office.home / "store.sqlite3")
    try:
        df = events_frame(spark, store, workdir=tmp_path)
        assert tuple(df.columns) == EVENT_COLUMNS and df.count() == store.count_events()
    finally:
        store.close()
    # the demo's Parquet has no session or quantity column: null and 1, with the frame's types
    demo = events_frame(spark, office.events)
    assert [(f.name, f.dataType.simpleString()) for f in demo.schema.fields] == [
        ("user_id", "string"), ("item_id", "string"), ("type", "string"), ("timestamp", "double"),
        ("session_id", "string"), ("quantity", "bigint")]


def test_jdbc_options_from_a_postgres_url() -> None:
    opts = jdbc_options("postgresql://shop:p%40ss@db.internal:5433/shopsense?options=-csearch_path%3Dtenant")
    assert opts == {"url": "jdbc:postgresql://db.internal:5433/shopsense", "driver": "org.postgresql.Driver",
                    "user": "shop", "password": "p@ss", "options": "-csearch_path=tenant"}
    with pytest.raises(ValidationError, match="unix socket"):
        jdbc_options("postgresql://postgres@/postgres?host=/run/postgresql&port=5432")


def test_missing_pyspark_or_java_names_the_fix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'shopsense\[spark\]'"):
        require_spark()
    monkeypatch.undo()
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SparkUnavailableError, match="Java runtime"):
        require_spark()


def test_postgres_events_over_jdbc_equal_the_export(spark, office, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'shopsense[postgres]'")
    if postgres_jdbc_jar() is None:
        pytest.skip("no PostgreSQL JDBC driver jar on this machine (set SHOPSENSE_JDBC_JAR)")
    from shopsense.store import PostgresStore
    from tests import services

    with services.or_skip(services.postgres_server()) as url:
        port = parse_qs(urlsplit(url).query)["port"][0]
        sqlite = SQLiteStore(office.home / "store.sqlite3")
        ev = sqlite.events()
        sqlite.close()
        from shopsense.catalog import Event

        events = [Event(user_id=u, item_id=i, type=t, timestamp=ts, session_id="s1" if k % 2 else None)
                  for k, (u, i, t, ts) in enumerate(zip(ev.user_id[:3000], ev.item_id[:3000], ev.type[:3000],
                                                        ev.timestamp[:3000], strict=True))]
        store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/postgres")  # TCP: what JDBC speaks
        try:
            store.add_events(events)
            over_jdbc = events_frame(spark, store, workdir=tmp_path / "jdbc")
            assert not (tmp_path / "jdbc" / "events").exists()  # read directly, nothing exported
            exported = events_frame(spark, url, workdir=tmp_path / "export")  # the socket URL: exported
            assert (tmp_path / "export" / "events").is_dir()
            a = sorted(tuple(r) for r in over_jdbc.collect())
            b = sorted(tuple(r) for r in exported.collect())
            assert len(a) == 3000 and a == b
        finally:
            store.close()
