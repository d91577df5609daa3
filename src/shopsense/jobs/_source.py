"""Events into Spark: a Parquet export of the store (streamed in batches, never whole in
memory), or a direct JDBC read of PostgreSQL when a driver jar is on this machine."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from shopsense.errors import ValidationError
from shopsense.store import PostgresStore, SQLiteStore, Store

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["EVENT_COLUMNS", "events_frame", "export_events_parquet", "jdbc_options"]

log = logging.getLogger(__name__)

#: the columns of every events frame the jobs read, in this order
EVENT_COLUMNS = ("user_id", "item_id", "type", "timestamp", "session_id", "quantity")
_SELECT = "SELECT user_id, item_id, type, ts, session_id, quantity FROM events"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("type", pa.string()),
                      ("timestamp", pa.float64()), ("session_id", pa.string()), ("quantity", pa.int64())])


def _rows_sqlite(path: Path, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    # read-only and in insertion order; WAL lets the shop keep writing meanwhile
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = conn.execute(_SELECT + " ORDER BY seq")
        while rows := cur.fetchmany(batch_size):
            yield rows
    finally:
        conn.close()


def _rows_postgres(url: str, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    import psycopg

    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor(name="shopsense_export") as cur:
        # a server-side cursor: the server sends one batch at a time
        cur.execute(_SELECT)  # type: ignore[arg-type]
        while rows := cur.fetchmany(batch_size):
            yield rows


def _rows_store(store: Store, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    # a back-end without a streaming read: its events() is the only way in (one array per column)
    ev = store.events()
    for s in range(0, len(ev), batch_size):
        yield list(zip(ev.user_id[s:s + batch_size], ev.item_id[s:s + batch_size], ev.type[s:s + batch_size],
                       ev.timestamp[s:s + batch_size].tolist(), ev.session_id[s:s + batch_size],
                       ev.quantity[s:s + batch_size].tolist(), strict=True))


def _is_postgres_url(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(_POSTGRES_SCHEMES)


def export_events_parquet(source: Store | str | Path, folder: str | Path, *, batch_size: int = 100_000,
                          rows_per_file: int = 2_000_000) -> int:
    """Write every stored event to ``folder`` as Parquet files of :data:`EVENT_COLUMNS`.

    ``source`` is a store, a ``postgresql://`` URL or a SQLite file. Rows are streamed
    ``batch_size`` at a time (SQLite cursor, PostgreSQL server-side cursor), so memory stays
    flat whatever the number of events; a new file starts every ``rows_per_file`` rows so Spark
    reads them in parallel. Returns the number of events written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, SQLiteStore):
        rows = _rows_sqlite(source.path, batch_size)
    elif isinstance(source, PostgresStore):
        rows = _rows_postgres(source.url, batch_size)
    elif _is_postgres_url(source):
        rows = _rows_postgres(str(source), batch_size)
    elif isinstance(source, Store):
        rows = _rows_store(source, batch_size)
    elif isinstance(source, (str, Path)) and Path(source).is_file():
        rows = _rows_sqlite(Path(source), batch_size)
    else:
        raise ValidationError(f"The 'source' parameter of export_events_parquet must be a Store, a postgresql:// "
                              f"URL or a SQLite file. Got {source!r} instead.", field="source")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    schema = _schema()
    n, in_file, part = 0, 0, 0
    writer: pq.ParquetWriter | None = None
    try:
        for batch in rows:
            if writer is None or in_file >= rows_per_file:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema)
                part, in_file = part + 1, 0
            cols = list(zip(*batch, strict=True))
            writer.write_batch(pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema))
            n += len(batch)
            in_file += len(batch)
        if writer is None:  # no events: an empty file still gives Spark the schema
            writer = pq.ParquetWriter(folder / "part-00000.parquet", schema)
    finally:
        if writer is not None:
            writer.close()
    log.info("exported %d events to %s", n, folder)
    return n


def jdbc_options(url: str) -> dict[str, str]:
    """Spark JDBC options (url, driver, user, password, and the URL's other query parameters
    such as ``options=-csearch_path=...``) for a ``postgresql://`` URL.

    JDBC speaks TCP only: a URL whose host is a unix socket folder (``?host=/run/postgresql``)
    raises :class:`~shopsense.errors.ValidationError` (the jobs then export through psycopg)."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    host = params.pop("host", None) or parts.hostname or "localhost"
    port = params.pop("port", None) or parts.port
    db = params.pop("dbname", None) or parts.path.lstrip("/")
    if host.startswith("/"):
        raise ValidationError(f"JDBC cannot reach PostgreSQL over the unix socket in {host!r}; "
                              "give a host name in the URL", field="store_url")
    opts = {"url": f"jdbc:postgresql://{host}{f':{port}' if port else ''}/{db}", "driver": "org.postgresql.Driver"}
    user = params.pop("user", None) or (unquote(parts.username) if parts.username else None)
    password = params.pop("password", None) or (unquote(parts.password) if parts.password else None)
    if user:
        opts["user"] = user
    if password:
        opts["password"] = password
    opts.update(params)
    return opts


def _jdbc_frame(spark: SparkSession, url: str) -> DataFrame:
    opts = jdbc_options(url)
    bounds = (spark.read.format("jdbc").options(**opts)
              .option("query", "SELECT min(seq) AS lo, max(seq) AS hi FROM events").load().first())
    reader = spark.read.format("jdbc").options(**opts).option("fetchsize", "10000")
    query = "(SELECT user_id, item_id, type, ts AS timestamp, session_id, quantity, seq FROM events) AS e"
    if bounds is not None and bounds["lo"] is not None:
        # partitioned by the sequence column: each task reads one range of rows
        reader = (reader.option("partitionColumn", "seq").option("lowerBound", str(bounds["lo"]))
                  .option("upperBound", str(int(bounds["hi"]) + 1))
                  .option("numPartitions", str(spark.sparkContext.defaultParallelism)))
    return reader.option("dbtable", query).load().drop("seq")


def _normalise(df: DataFrame) -> DataFrame:
    """The frame with exactly :data:`EVENT_COLUMNS` (a missing session is null, quantity 1)."""
    from pyspark.sql import functions as F

    have = set(df.columns)
    defaults = {"session_id": F.lit(None).cast("string"), "quantity": F.lit(1).cast("long"),
                "item_id": F.lit(None).cast("string")}
    types = {"user_id": "string", "item_id": "string", "type": "string", "timestamp": "double",
             "session_id": "string", "quantity": "long"}
    cols = []
    for c in EVENT_COLUMNS:
        if c in have:
            cols.append(F.col(c).cast(types[c]).alias(c))
        elif c in defaults:
            cols.append(defaults[c].alias(c))
        else:
            raise ValidationError(f"events have no {c!r} column; found {sorted(have)}", field=c)
    return df.select(*cols)


def events_frame(spark: SparkSession, source: Store | str | Path, *, workdir: str | Path | None = None,
                 batch_size: int = 100_000) -> DataFrame:
    """The stored events as a Spark DataFrame of :data:`EVENT_COLUMNS`.

    ``source`` is a store, a ``postgresql://`` URL, a SQLite file, or Parquet (a file or a
    folder, e.g. the demo's ``office_events.parquet``; missing session/quantity columns are
    filled). PostgreSQL is read over JDBC when the session has the driver on its class path
    (``spark.jars``, see :func:`~shopsense.jobs.postgres_jdbc_jar`); otherwise, and for
    SQLite (one file that executors on other machines cannot open), the events are exported
    to Parquet under ``workdir`` in batches and Spark reads the export. The frame reads the
    files lazily: keep ``workdir`` until the job is done.
    """
    if isinstance(source, (str, Path)) and not _is_postgres_url(source):
        p = Path(source)
        if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("*.parquet"))):
            return _normalise(spark.read.parquet(str(p)))
    url = source.url if isinstance(source, PostgresStore) else (str(source) if _is_postgres_url(source) else None)
    if url is not None:
        try:
            return _normalise(_jdbc_frame(spark, url))
        except Exception as exc:  # noqa: BLE001 - no driver jar, or a URL JDBC cannot express: export
            log.info("PostgreSQL over JDBC not available (%s); exporting the events to Parquet",
                     str(exc).splitlines()[0][:200])
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="shopsense-events-"))
    out = folder / "events"
    export_events_parquet(source, out, batch_size=batch_size)
    return _normalise(spark.read.parquet(str(out)))
