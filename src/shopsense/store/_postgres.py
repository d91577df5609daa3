"""PostgreSQL back-end (psycopg 3): the store of a shop that outgrows one machine.

It keeps the SQLite store's contract (tests/store/contract.py) and its schema, with
what a server does better:

* **Migrations**: numbered SQL in :data:`MIGRATIONS`, each applied in its own
  transaction under an advisory lock (several processes may start at once) and recorded
  in ``schema_version``; a database written by a newer shopsense is refused.
* **Bulk writes**: each batch is COPYed into a temporary staging table, then moved with
  one ``INSERT ... SELECT ... ON CONFLICT``: upsert by product id, and events
  de-duplicated by a 128-bit key of every field but the price (:func:`~shopsense.store._base.event_key`;
  SQLite's unique index holds those fields themselves).
  One call is one transaction, so a batch is stored whole or not at all.
* **Streaming reads**: :meth:`PostgresStore.events` reads through a server-side cursor
  in chunks, never holding the whole result twice.
* **Erasure**: events are hash-partitioned by user, so :meth:`PostgresStore.delete_user`
  can rewrite (``VACUUM FULL``) the one partition that held the user's rows. A plain
  DELETE leaves the bytes in the table's pages until they are reused; after the rewrite
  no table or index file holds them. (The server's WAL and backups are outside a
  client's reach: their retention is the operator's policy.)

One connection per process, guarded by a lock as in the SQLite store; a forked child
opens its own on first use instead of sharing the parent's socket.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from shopsense.catalog import Event, Product
from shopsense.errors import ShopsenseError, require
from shopsense.store._base import (
    EXPOSURE_FIELDS,
    EventArrays,
    Exposure,
    SQLReads,
    Store,
    event_arrays,
    event_rows,
    exposure_row,
)

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: events are hash-partitioned by user_id: an erasure rewrites 1/EVENT_PARTITIONS of them
EVENT_PARTITIONS = 16

_EVENT_COLS = "key, user_id, item_id, type, ts, session_id, query, quantity, price"
_EXPOSURE_COLS = ", ".join(EXPOSURE_FIELDS)

#: (name, SQL) in order; version n is MIGRATIONS[n - 1]. Append, never edit a released one.
MIGRATIONS: list[tuple[str, str]] = [
    ("initial schema", f"""
CREATE TABLE products (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now())
);
CREATE TABLE events (
    seq BIGSERIAL NOT NULL,
    key UUID NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT,
    type TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    session_id TEXT,
    query TEXT,
    quantity INTEGER NOT NULL DEFAULT 1,
    price DOUBLE PRECISION,
    -- the key hashes the user id among the other fields, so (user_id, key) is as unique
    -- as the key; a partitioned table's unique index must hold the partition column
    UNIQUE (user_id, key)
) PARTITION BY HASH (user_id);
{"".join(f"CREATE TABLE events_p{i} PARTITION OF events FOR VALUES WITH (MODULUS {EVENT_PARTITIONS}, "
         f"REMAINDER {i});{chr(10)}" for i in range(EVENT_PARTITIONS))}
CREATE INDEX events_user ON events (user_id, ts, seq);
CREATE INDEX events_session ON events (session_id, ts, seq);
CREATE INDEX events_ts ON events (ts, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""),
    # impressions and the actions on their items, partitioned like events (by the user's
    # pseudonym) so that erasing a user rewrites one partition
    ("exposures", f"""
CREATE TABLE exposures (
    seq BIGSERIAL NOT NULL,
    key UUID NOT NULL,
    kind TEXT NOT NULL,
    list_id TEXT NOT NULL,
    user_key TEXT NOT NULL,
    session_id TEXT,
    surface TEXT NOT NULL,
    variant TEXT,
    experiment TEXT,
    query TEXT,
    items TEXT,
    n_results INTEGER,
    item_id TEXT,
    position INTEGER,
    price DOUBLE PRECISION,
    quantity INTEGER NOT NULL DEFAULT 1,
    ts DOUBLE PRECISION NOT NULL,
    UNIQUE (user_key, key)
) PARTITION BY HASH (user_key);
{"".join(f"CREATE TABLE exposures_p{i} PARTITION OF exposures FOR VALUES WITH (MODULUS {EVENT_PARTITIONS}, "
         f"REMAINDER {i});{chr(10)}" for i in range(EVENT_PARTITIONS))}
CREATE INDEX exposures_ts ON exposures (ts, seq);
CREATE INDEX exposures_user ON exposures (user_key, ts);
CREATE INDEX exposures_list ON exposures (list_id);
"""),
]

_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

# Per connection; rows go at commit or rollback, so a failed batch leaves none behind.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS products_stage (ord INTEGER, id TEXT, data TEXT) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS events_stage (
    ord INTEGER, key UUID, user_id TEXT, item_id TEXT, type TEXT, ts DOUBLE PRECISION,
    session_id TEXT, query TEXT, quantity INTEGER, price DOUBLE PRECISION
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS exposures_stage (
    ord INTEGER, key UUID, kind TEXT, list_id TEXT, user_key TEXT, session_id TEXT, surface TEXT,
    variant TEXT, experiment TEXT, query TEXT, items TEXT, n_results INTEGER, item_id TEXT,
    position INTEGER, price DOUBLE PRECISION, quantity INTEGER, ts DOUBLE PRECISION
) ON COMMIT DELETE ROWS;
"""

#: how long delete_user waits for readers of the user's partition before it gives up the rewrite
_ERASE_LOCK_TIMEOUT_MS = 30_000


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the migrations this database lacks; returns its schema version.

    Each migration runs in its own transaction with an advisory lock of the current
    schema held, so processes starting together apply each one exactly once.
    """
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row and row[0]:  # the common case, up to date: one look, no lock
        version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
                      .fetchone()[0])  # type: ignore[index]
        if version == len(MIGRATIONS):
            return version
    version = 0
    for target, (name, sql) in enumerate(MIGRATIONS, start=1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('shopsense:' || current_schema()))")
            conn.execute(_SCHEMA_VERSION)
            version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
                          .fetchone()[0])  # type: ignore[index]
            if version > len(MIGRATIONS):
                raise ShopsenseError(
                    f"The PostgreSQL store has schema version {version}, newer than this shopsense "
                    f"knows ({len(MIGRATIONS)}); upgrade shopsense to open it."
                )
            if version >= target:
                continue
            log.info("store: applying migration %d (%s)", target, name)
            conn.execute(sql)  # type: ignore[arg-type]  # several statements, no parameters
            conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (target, name))
            version = target
    return version


class PostgresStore(SQLReads, Store):
    """Products as JSON rows keyed by id, events as columns, in PostgreSQL.

    Parameters
    ----------
    url
        A libpq connection string, e.g. ``postgresql://shop@db.internal/shopsense``;
        ``?options=-csearch_path%3Dmyschema`` puts the tables in a schema of their own.

    Example
    -------
    >>> store = PostgresStore("postgresql://shop@localhost/shopsense")  # doctest: +SKIP
    >>> store.add_events(events)                                        # doctest: +SKIP
    """

    _mark = "%s"  # psycopg's parameter mark (SQLReads)

    #: (name, SQL) per schema version, oldest first
    migrations = MIGRATIONS
    #: events are hash-partitioned by user_id into this many tables
    event_partitions = EVENT_PARTITIONS
    #: rows per round trip of the server-side cursor in :meth:`events`
    fetch_rows = 20_000

    def __init__(self, url: str) -> None:
        self._psycopg = require("psycopg", "postgres")
        self.url = url
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = 0
        self._closed = False
        self.schema_version_ = 0
        with self._lock:
            self._connection()  # connect and migrate now: a bad URL fails here, not mid-request

    def _connection(self) -> psycopg.Connection[Any]:
        """The process's connection, (re)opened when missing, broken or inherited."""
        if self._closed:
            raise ShopsenseError("The PostgreSQL store is closed.")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken and self._pid == os.getpid():
            return conn
        # After a fork the parent's connection is left alone (psycopg does not close a
        # connection that another process opened): this process opens its own.
        conn = self._psycopg.connect(self.url, autocommit=True)
        try:
            self.schema_version_ = migrate(conn)
            conn.execute(_STAGING)  # type: ignore[arg-type]
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    # -- writes ----------------------------------------------------------------
    def upsert_products(self, products: Iterable[Product]) -> int:
        rows: dict[str, str] = {}
        n = 0
        for p in products:
            # one id twice in a batch: the last data, at the first one's place (as SQLite)
            rows[p.id] = p.model_dump_json()
            n += 1
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY products_stage (ord, id, data) FROM STDIN") as copy:
                    for i, (pid, data) in enumerate(rows.items()):
                        copy.write_row((i, pid, data))
                cur.execute(
                    "INSERT INTO products (id, data) SELECT id, data FROM products_stage ORDER BY ord "
                    "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, "
                    "updated_at = extract(epoch FROM now())"
                )
        return n

    def add_events(self, events: Iterable[Event]) -> int:
        rows = event_rows(events)
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY events_stage (ord, {_EVENT_COLS}) FROM STDIN") as copy:
                    for i, row in enumerate(rows):
                        copy.write_row((i, *row))
                # ORDER BY ord: seq follows the batch's order, which breaks ties of equal
                # timestamps in events(); DO NOTHING also skips a repeat within the batch
                cur.execute(
                    f"INSERT INTO events ({_EVENT_COLS}) SELECT {_EVENT_COLS} FROM events_stage "
                    "ORDER BY ord ON CONFLICT (user_id, key) DO NOTHING"
                )
                return max(cur.rowcount, 0)

    def add_exposures(self, exposures: Iterable[Exposure]) -> int:
        keys: dict[str, str] = {}
        rows = []
        for e in exposures:
            if e.user_id not in keys:
                keys[e.user_id] = self.user_key(e.user_id)
            rows.append(exposure_row(e, keys[e.user_id]))
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY exposures_stage (ord, key, {_EXPOSURE_COLS}) FROM STDIN") as copy:
                    for i, row in enumerate(rows):
                        copy.write_row((i, *row))
                cur.execute(
                    f"INSERT INTO exposures (key, {_EXPOSURE_COLS}) SELECT key, {_EXPOSURE_COLS} "
                    "FROM exposures_stage ORDER BY ord ON CONFLICT (user_key, key) DO NOTHING"
                )
                return max(cur.rowcount, 0)

    def delete_before(self, ts: float) -> dict[str, int]:
        out = {}
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                for table in ("events", "exposures"):
                    cur = conn.execute(f"DELETE FROM {table} WHERE ts < %s", (float(ts),))  # type: ignore[arg-type]
                    out[table] = max(cur.rowcount, 0)
        return out

    def set_meta_default(self, key: str, value: str) -> str:
        with self._lock:
            self._connection().execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, value))
        return self.get_meta(key) or value

    def delete_user(self, user_id: str) -> int:
        n = self._erase("events", "user_id", user_id)
        self._erase("exposures", "user_key", self.user_key(user_id))
        return n

    def _erase(self, table: str, column: str, value: str) -> int:
        sql = self._psycopg.sql
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                row = conn.execute(
                    sql.SQL("WITH d AS (DELETE FROM {} WHERE {} = %s RETURNING tableoid) "
                            "SELECT count(*), min(n.nspname), min(c.relname) FROM d "
                            "JOIN pg_class c ON c.oid = d.tableoid JOIN pg_namespace n ON n.oid = c.relnamespace")
                    .format(sql.Identifier(table), sql.Identifier(column)),
                    (value,),
                ).fetchone()
            n, schema, partition = int(row[0]), row[1], row[2]  # type: ignore[index]
            if n:
                # The deleted rows' bytes stay in the pages (and index pages) until they are
                # reused, even after a plain VACUUM: rewrite the user's partition so that no
                # file of the database holds them (1/EVENT_PARTITIONS of the table). The
                # rewrite locks that partition; a reader holding it past the timeout leaves
                # the bytes for autovacuum and page reuse, and says so.
                conn.execute(f"SET lock_timeout = '{_ERASE_LOCK_TIMEOUT_MS}ms'")  # type: ignore[arg-type]
                try:
                    conn.execute(sql.SQL("VACUUM (FULL) {}").format(sql.Identifier(schema, partition)))
                except self._psycopg.errors.LockNotAvailable:
                    log.warning("store: erased %d %s of a user, but partition %s was busy for %d s; "
                                "their bytes remain in free pages until reused", n, table, partition,
                                _ERASE_LOCK_TIMEOUT_MS // 1000)
                finally:
                    conn.execute("RESET lock_timeout")
        return n

    def delete_products(self, product_ids: list[str]) -> int:
        if not product_ids:
            return 0
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                cur = conn.execute("DELETE FROM products WHERE id = ANY(%s)", (list(product_ids),))
                return max(cur.rowcount, 0)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._connection().execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))

    # -- reads -----------------------------------------------------------------
    def _query(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(query, args).fetchall()  # type: ignore[arg-type]

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def get_product(self, product_id: str) -> Product | None:
        rows = self._query("SELECT data FROM products WHERE id = %s", (product_id,))
        return Product.model_validate_json(rows[0][0]) if rows else None

    def get_products(self, product_ids: list[str]) -> list[Product | None]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return []
        found = {pid: Product.model_validate_json(data) for pid, data in
                 self._query("SELECT id, data FROM products WHERE id = ANY(%s)", (ids,))}
        return [found.get(i) for i in product_ids]

    def events(
        self, user_id: str | None = None, session_id: str | None = None, since: float | None = None
    ) -> EventArrays:
        query, args = self._event_query(user_id, session_id, since)
        cols: list[list[Any]] = [[] for _ in range(7)]
        with self._lock:
            conn = self._connection()
            # a server-side cursor: the server sends fetch_rows at a time instead of the
            # whole result, so a large read costs the arrays and one chunk
            with conn.transaction(), conn.cursor(name="shopsense_events") as cur:
                cur.execute(query, args)  # type: ignore[arg-type]
                while chunk := cur.fetchmany(self.fetch_rows):
                    for col, values in zip(cols, zip(*chunk, strict=True), strict=True):
                        col.extend(values)
        return event_arrays(cols)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
