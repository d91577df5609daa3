"""SQLite back-end (WAL mode): the embedded default store."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from shopsense.catalog import Event, Product
from shopsense.errors import ShopsenseError
from shopsense.store._base import (
    EXPOSURE_FIELDS,
    EventArrays,
    Exposure,
    SQLReads,
    Store,
    event_arrays,
    event_values,
    exposure_row,
)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: the layout of the file, in ``PRAGMA user_version``: 0 is the first one (events keyed by a
#: 32-hex-character hash under a UNIQUE constraint); 1 is :data:`_SCHEMA`.
#: Opening a version-0 file migrates it (:meth:`SQLiteStore._migrate_events_v1`); a file of a
#: newer version than this is refused.
SCHEMA_VERSION = 1

# Why the events table looks like this (issue 16, bench/ingest.py; 494,839 Amazon events in
# 20,000-event transactions): the first layout kept a 32-character hex blake2b of the fields in
# `key TEXT UNIQUE` and indexed (user_id, ts), (session_id, ts) and (ts). A hash is random, so
# every transaction inserted into every page of the key index, and each commit wrote all those
# pages to the WAL again: SQLite took ~8 of the ingest's ~10 CPU seconds, and the keys ~1.6 s more
# in Python. Now
# - the identity is a UNIQUE index on the fields themselves, led by ts: a file in time order
#   appends to it instead of scattering, and it is exact (no hash, no collision, nothing computed
#   in Python per row). coalesce(..., '') because NULLs never conflict in a UNIQUE index, and the
#   old key treated a missing and an empty item/session/query alike; price is left out, as
#   before (an identical event with another price is the same event);
# - (user_id, ts) stays (histories, count per user, delete_user): the one index that takes
#   random inserts, and the narrowest possible for those reads;
# - (session_id, ts) is partial: most events have no session, and `session_id = ?` (the only
#   read) implies NOT NULL, so SQLite still uses it;
# - (ts) stays although the identity index starts with ts: it holds the rowid, so it gives
#   `ORDER BY ts, seq` (every full read: training) without sorting ties; without it that read
#   of 494,839 events took 1.7 s instead of 1.3 s. It only appends, ~0.2-0.5 CPU s per 495k.
# Measured on this machine (2 shared cores at load 7-9, CPU seconds of the inserts alone of
# bench/ingest.py's file in 20k-event transactions): first layout 7.1-9.8 s (of which hashing
# 1.6-2.3 s); an 8-byte BLOB hash key under UNIQUE(ts, key) 3.5 s + 1.2-1.8 s of hashing; this
# layout 3.0-3.6 s; the same without (user_id, ts) 2.0 s; a table with no index at all 1.4 s.
_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    session_id TEXT,
    query TEXT,
    quantity INTEGER NOT NULL DEFAULT 1,
    price REAL
)"""
#: the identity columns of an event, as the UNIQUE index reads them (the migration's de-duplication)
_EVENT_IDENTITY_COLS = ("ts, user_id, coalesce(item_id, ''), type, coalesce(session_id, ''), "
                        "coalesce(query, ''), quantity")
_EVENT_IDENTITY = f"CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events({_EVENT_IDENTITY_COLS})"
#: the indexes no write needs (the identity index de-duplicates): by name, as created
_EVENT_READ_INDEXES = {
    "events_user": "CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts)",
    "events_session": "CREATE INDEX IF NOT EXISTS events_session ON events(session_id, ts) WHERE session_id IS NOT NULL",
    "events_ts": "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
}
_EVENT_INDEXES = [_EVENT_IDENTITY, *_EVENT_READ_INDEXES.values()]

_SCHEMA: list[str] = [
    """CREATE TABLE IF NOT EXISTS products (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL DEFAULT (((julianday('now') - 2440587.5) * 86400.0))
)""",
    _EVENTS_TABLE.format(name="events"),
    *_EVENT_INDEXES,
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS exposures (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
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
    price REAL,
    quantity INTEGER NOT NULL DEFAULT 1,
    ts REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS exposures_ts ON exposures(ts)",
    "CREATE INDEX IF NOT EXISTS exposures_user ON exposures(user_key, ts)",
    "CREATE INDEX IF NOT EXISTS exposures_list ON exposures(list_id)",
]

_EXPOSURE_COLS = ", ".join(EXPOSURE_FIELDS)
_EVENT_COLS = "user_id, item_id, type, ts, session_id, query, quantity, price"
# ON CONFLICT DO NOTHING, not INSERT OR IGNORE: OR IGNORE also skips a row that breaks NOT NULL,
# silently; this skips only an event already stored (the identity index) and refuses the rest
_INSERT_EVENT = f"INSERT INTO events({_EVENT_COLS}) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
#: rows per INSERT statement. Why several rows per statement, by hand: Python's sqlite3 binds,
#: steps and resets once per row in executemany, and that was most of the cost of a bulk load
#: (494,839 events, 8 columns, no index: 0.92 CPU s in executemany; SQLite's own INSERT ...
#: SELECT of the same rows: 0.05 s). A VALUES list of 500 rows pays that once per 500 rows.
#: 500 x 8 = 4,000 parameters, under SQLite's limit of 32,766.
_ROWS_PER_INSERT = 500
#: the columns an event always has; the others are left out of a batch where every row has
#: their default (no session, query or price, quantity 1), so 4 values per row are bound, not 8
_EVENT_COLS_NARROW = 4


_EVENT_COL_NAMES = _EVENT_COLS.split(", ")


@functools.lru_cache(maxsize=64)
def _insert_statement(rows: int, cols: int) -> str:
    """The INSERT of ``rows`` events of the first ``cols`` columns (built once per shape: a
    server's writer inserts batches of a few sizes again and again)."""
    one = "(" + ",".join("?" * cols) + ")"
    names = ", ".join(_EVENT_COL_NAMES[:cols])
    return f"INSERT INTO events({names}) VALUES {','.join([one] * rows)} ON CONFLICT DO NOTHING"


def _insert_events(cur: sqlite3.Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert event tuples (:func:`event_values`) in multi-row statements; the same rows, the
    same conflicts skipped, as ``executemany(_INSERT_EVENT, rows)`` (tests/store/test_sqlite_schema.py)."""
    narrow = all(r[4] is None and r[5] is None and r[6] == 1 and r[7] is None for r in rows)
    cols = _EVENT_COLS_NARROW if narrow else len(_EVENT_COL_NAMES)
    flat = list(chain.from_iterable(r[:cols] for r in rows) if narrow else chain.from_iterable(rows))
    full = len(rows) // _ROWS_PER_INSERT * _ROWS_PER_INSERT
    if full:
        stmt = _insert_statement(_ROWS_PER_INSERT, cols)
        step = _ROWS_PER_INSERT * cols
        for at in range(0, full * cols, step):
            cur.execute(stmt, flat[at:at + step])
    if full < len(rows):
        cur.execute(_insert_statement(len(rows) - full, cols), flat[full * cols:])


def _create_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only (0600), like the API
    keys: it holds every shopper's events. SQLite gives its -wal and -shm files the mode of
    the database file. An existing file keeps the mode its owner chose."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _writer_lock_fd(db: Path) -> int | None:
    """The descriptor of ``<db>.writer`` (0600, empty), whose ``flock`` orders the writers of
    every process; None where there is no ``flock`` (then SQLite's own locking alone)."""
    if fcntl is None:
        return None
    try:
        return os.open(f"{db}.writer", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only home: nothing will be written anyway
        return None


class SQLiteStore(SQLReads, Store):
    """Products as JSON rows keyed by id, events as columns.

    One write connection guarded by a lock (SQLite serialises writers anyway), and a
    pool of read connections: in WAL mode a reader sees the last committed snapshot and
    never waits for a writer, so a read (a shopper's history, a product) never queues
    behind a commit or behind this process waiting for another process's write lock.
    :meth:`add_event_batches` commits the events of many requests in one durable
    transaction (group commit; ``shopsense serve`` has one writer thread per worker).
    """

    #: the layout this code writes (``PRAGMA user_version``); an older file is migrated on open
    schema_version = SCHEMA_VERSION

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._lock = threading.RLock()
        self._depth = 0  # how deep this process's writer is in writing() (under self._lock)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # 16 KiB pages for a new file (before WAL mode, which fixes the size; an existing file
        # keeps its own): the (user_id, ts) index takes random inserts, and with bigger pages a
        # 20k-event transaction splits and rewrites fewer of them. bench/ingest.py's events in
        # 20k transactions: 2.4-3.0 CPU s of inserts instead of 3.0-3.4 (4 KiB), wall 4.5-5.5 s
        # instead of 6.0-6.6 at load 6-7; a user's history read 35-42 us either way.
        self._conn.execute("PRAGMA page_size=16384")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # 64 MB page cache (the default is 2 MB): the unique event-key index takes random
        # inserts, and with a small cache each batch re-reads its pages (bench/ingest.py)
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, so a user's erased data cannot be
        # read back from free pages of the file.
        self._conn.execute("PRAGMA secure_delete=ON")
        # writers of every process take this lock before SQLite's: a blocking lock hands over
        # at once, where SQLite's busy handler polls with growing sleeps (up to 100 ms), so two
        # server workers committing in turn spent most of their time asleep (bench/serve.py)
        self._wfd = _writer_lock_fd(self.path)
        try:
            self._open_schema()
        except BaseException:
            self._conn.close()
            if self._wfd is not None:
                os.close(self._wfd)
            raise
        # idle read connections, reused last-in first-out; one per concurrent reader at most
        self._readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    def _open_schema(self) -> None:
        """Create the tables of a new file, or bring an older file to :data:`SCHEMA_VERSION`, in
        one transaction under the writer lock (processes opening the file together: the first
        one migrates, the others find it done)."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            self._restore_read_indexes()
            return  # the common case: no write, so a read-only home opens too
        if version > SCHEMA_VERSION:
            raise ShopsenseError(
                f"The SQLite store {str(self.path)!r} has schema version {version}, newer than this "
                f"shopsense knows ({SCHEMA_VERSION}); upgrade shopsense to open it.")
        with self.writing():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                version = cur.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:
                    cols = {r[1] for r in cur.execute("PRAGMA table_info(events)")}
                    if "key" in cols:
                        self._migrate_events_v1(cur)
                    for stmt in _SCHEMA:
                        cur.execute(stmt)
                    cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _missing_read_indexes(self) -> list[str]:
        have = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                 "AND tbl_name = 'events'")}
        return [sql for name, sql in _EVENT_READ_INDEXES.items() if name not in have]

    def _restore_read_indexes(self) -> None:
        """Build the read indexes a bulk load dropped and could not rebuild (the process was
        killed): they hold nothing but what the table holds, so building them again is the whole
        repair. Does nothing (no write) when they are all there."""
        missing = self._missing_read_indexes()
        if not missing:
            return
        log.warning("store: building %d event indexes an interrupted bulk load left out of %s",
                    len(missing), self.path)
        try:
            self._write_script(missing)
        except sqlite3.OperationalError as exc:  # a read-only file: reads still work, slower
            log.warning("store: could not build the event indexes (%s)", exc)

    def _write_script(self, statements: list[str]) -> None:
        with self._transaction() as cur:
            for stmt in statements:
                cur.execute(stmt)

    @contextmanager
    def bulk_events(self) -> Iterator[None]:
        """Loading a file into an empty events table: the read indexes (user, session, time)
        are dropped for the load and built once at the end, sorted, instead of taking every
        row as it comes; the identity index stays, so duplicates are still skipped, and each
        batch still commits on its own. 494,839 events (bench/ingest.py's file): inserts 1.44
        CPU s with them, 0.61 s + 0.29 s to build them after (tests/store/test_sqlite_schema.py).
        A table that already holds events keeps its indexes (readers use them; a build would
        cost the whole table). Killed in between, the next open builds them."""
        with self._transaction() as cur:
            empty = cur.execute("SELECT NOT EXISTS (SELECT 1 FROM events)").fetchone()[0]
            if empty:
                for name in _EVENT_READ_INDEXES:
                    cur.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            yield
        finally:
            if empty:
                self._write_script(self._missing_read_indexes())

    def _migrate_events_v1(self, cur: sqlite3.Cursor) -> None:
        """Version 0 -> 1: rebuild the events table without its hash key (see _EVENTS_TABLE),
        inside the caller's transaction, so a crash leaves the old table whole. Rows keep their
        seq, in order, and the AUTOINCREMENT counter keeps its value (a seq is never reused)."""
        n = cur.execute("SELECT count(*) FROM events").fetchone()[0]
        log.info("store: migrating %d events of %s to schema version 1", n, self.path)
        row = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        counter = row[0] if row else 0
        cur.execute(_EVENTS_TABLE.format(name="events_v1"))
        # copied before any index exists: the indexes are then built sorted, in one pass
        cur.execute(f"INSERT INTO events_v1(seq, {_EVENT_COLS}) SELECT seq, {_EVENT_COLS} FROM events ORDER BY seq")
        cur.execute("DROP TABLE events")  # its indexes with it
        cur.execute("ALTER TABLE events_v1 RENAME TO events")
        cur.execute("DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_v1')")
        cur.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('events', max(?, (SELECT coalesce(max(seq), 0) "
                    "FROM events)))", (counter,))
        try:
            cur.execute(_EVENT_IDENTITY)
        except sqlite3.IntegrityError:
            # two rows the old keys told apart but the fields do not (a key written by hand or by
            # other software): keep the first, as an ingest would have
            cur.execute(f"DELETE FROM events WHERE seq NOT IN (SELECT min(seq) FROM events "
                        f"GROUP BY {_EVENT_IDENTITY_COLS})")
            log.warning("store: %d duplicate events dropped while migrating %s", cur.rowcount, self.path)
            cur.execute(_EVENT_IDENTITY)

    def _borrow(self) -> sqlite3.Connection:
        with self._readers_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed store.")
            if self._readers:
                return self._readers.pop()
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        # reads go through the OS page cache shared by every connection and worker
        # process (memory-mapped), not through a private page cache per connection
        conn.execute("PRAGMA mmap_size=268435456")
        with self._readers_lock:
            self._all_readers.append(conn)
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._readers_lock:
            if self._closed:
                conn.close()
            else:
                self._readers.append(conn)

    # -- writes ----------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write locks: this process's, then the one shared by every process writing
        the file. Writes made by this thread inside the block take them again at no cost, so
        a caller can hold them across its own preparation: the server's event writer takes
        the requests queued while it waited for another process's commit into its group."""
        with self._lock:  # re-entrant: the depth says whether this thread holds the flock
            if self._wfd is None or self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            fcntl.flock(self._wfd, fcntl.LOCK_EX)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fcntl.flock(self._wfd, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction under the writer locks: committed when the block ends, rolled
        back when it raises."""
        with self.writing():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _tx(self, sql: str | Callable[[sqlite3.Cursor, list[tuple]], None], rows: list[tuple]) -> int:
        """``rows`` written in one transaction by ``executemany(sql)``, or by ``sql(cursor, rows)``;
        returns the number of rows changed."""
        with self._transaction() as cur:
            before = self._conn.total_changes
            if callable(sql):
                sql(cur, rows)
            else:
                cur.executemany(sql, rows)
            n = self._conn.total_changes - before
            return n

    def upsert_products(self, products: Iterable[Product]) -> int:
        rows = [(p.id, p.model_dump_json()) for p in products]
        self._tx(
            "INSERT INTO products(id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET "
            "data=excluded.data, updated_at=((julianday('now') - 2440587.5) * 86400.0)",
            rows,
        )
        return len(rows)

    def add_events(self, events: Iterable[Event]) -> int:
        return self._tx(_insert_events, event_values(events))

    def add_event_batches(self, batches: Sequence[Sequence[Event]], durable: bool = True) -> list[int | Exception]:
        """Store several batches of events (each all or nothing) in one transaction: group
        commit, so N requests cost one commit instead of N. Returns, per batch, how many of
        its events were new, or the exception that refused it (its rows are rolled back to
        a savepoint; the other batches still commit). ``durable``: the commit waits until
        the write-ahead log is on disk (``synchronous=FULL``), so an acknowledged batch
        survives a power cut too, not only a crash of the process; one sync per group, not
        per request. An error of the database itself (locked, disk full) refuses every
        batch and is raised."""
        out: list[int | Exception] = []
        with self.writing():
            cur = self._conn.cursor()
            if durable:
                cur.execute("PRAGMA synchronous=FULL")
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    for batch in batches:
                        cur.execute("SAVEPOINT batch")
                        try:
                            before = self._conn.total_changes
                            _insert_events(cur, event_values(batch))
                            out.append(self._conn.total_changes - before)
                            cur.execute("RELEASE batch")
                        except (sqlite3.IntegrityError, ValueError, TypeError, OverflowError) as exc:
                            cur.execute("ROLLBACK TO batch")
                            cur.execute("RELEASE batch")
                            out.append(exc)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    cur.execute("PRAGMA synchronous=NORMAL")
        return out

    def add_exposures(self, exposures: Iterable[Exposure]) -> int:
        keys: dict[str, str] = {}
        rows = []
        for e in exposures:
            if e.user_id not in keys:
                keys[e.user_id] = self.user_key(e.user_id)
            rows.append(exposure_row(e, keys[e.user_id]))
        marks = ",".join("?" * (len(EXPOSURE_FIELDS) + 1))
        return self._tx(f"INSERT OR IGNORE INTO exposures(key, {_EXPOSURE_COLS}) VALUES ({marks})", rows)

    def delete_before(self, ts: float) -> dict[str, int]:
        out = {"events": self._tx("DELETE FROM events WHERE ts < ?", [(float(ts),)]),
               "exposures": self._tx("DELETE FROM exposures WHERE ts < ?", [(float(ts),)])}
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return out

    def set_meta_default(self, key: str, value: str) -> str:
        self._tx("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", [(key, value)])
        return self.get_meta(key) or value

    def delete_user(self, user_id: str) -> int:
        n = self._tx("DELETE FROM events WHERE user_id = ?", [(user_id,)])
        self._tx("DELETE FROM exposures WHERE user_key = ?", [(self.user_key(user_id),)])
        # Copy the WAL into the main file and truncate it: otherwise the old pages,
        # with the user's ids in them, stay readable in the -wal file until the next
        # checkpoint.
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    def delete_products(self, product_ids: list[str]) -> int:
        return self._tx("DELETE FROM products WHERE id = ?", [(i,) for i in product_ids])

    def set_meta(self, key: str, value: str) -> None:
        self._tx("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [(key, value)])

    # -- reads -----------------------------------------------------------------
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        conn = self._borrow()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            self._give_back(conn)

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def get_product(self, product_id: str) -> Product | None:
        rows = self._query("SELECT data FROM products WHERE id = ?", (product_id,))
        return Product.model_validate_json(rows[0][0]) if rows else None

    def get_products(self, product_ids: list[str]) -> list[Product | None]:
        found: dict[str, Product] = {}
        ids = list(dict.fromkeys(product_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, data in self._query(
                f"SELECT id, data FROM products WHERE id IN ({marks})", tuple(chunk)
            ):
                found[pid] = Product.model_validate_json(data)
        return [found.get(i) for i in product_ids]

    def events(
        self, user_id: str | None = None, session_id: str | None = None, since: float | None = None
    ) -> EventArrays:
        rows = self._query(*self._event_query(user_id, session_id, since))
        return event_arrays(list(zip(*rows)) if rows else [()] * 7)

    def close(self) -> None:
        with self._readers_lock:
            self._closed = True
            readers, self._readers, self._all_readers = self._all_readers, [], []
        for conn in readers:  # a read still running finishes first (the close waits for it)
            conn.close()
        with self._lock:
            self._conn.close()
            if self._wfd is not None:
                os.close(self._wfd)
                self._wfd = None


