"""SQLite back-end (WAL mode): the embedded default store."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shopsense.catalog import Event, Product
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

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL DEFAULT (((julianday('now') - 2440587.5) * 86400.0))
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    session_id TEXT,
    query TEXT,
    quantity INTEGER NOT NULL DEFAULT 1,
    price REAL
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id, ts);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exposures (
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
);
CREATE INDEX IF NOT EXISTS exposures_ts ON exposures(ts);
CREATE INDEX IF NOT EXISTS exposures_user ON exposures(user_key, ts);
CREATE INDEX IF NOT EXISTS exposures_list ON exposures(list_id);
"""

_EXPOSURE_COLS = ", ".join(EXPOSURE_FIELDS)
_INSERT_EVENT = ("INSERT OR IGNORE INTO events(key, user_id, item_id, type, ts, session_id, query, "
                 "quantity, price) VALUES (?,?,?,?,?,?,?,?,?)")


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # 64 MB page cache (the default is 2 MB): the unique event-key index takes random
        # inserts, and with a small cache each batch re-reads its pages (bench/ingest.py)
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, so a user's erased data cannot be
        # read back from free pages of the file.
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.executescript(_SCHEMA)
        # writers of every process take this lock before SQLite's: a blocking lock hands over
        # at once, where SQLite's busy handler polls with growing sleeps (up to 100 ms), so two
        # server workers committing in turn spent most of their time asleep (bench/serve.py)
        self._wfd = _writer_lock_fd(self.path)
        # idle read connections, reused last-in first-out; one per concurrent reader at most
        self._readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

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
    def _writing(self) -> Iterator[None]:
        """This process's lock, then the one shared by every process writing the file."""
        with self._lock:
            if self._wfd is None:
                yield
                return
            fcntl.flock(self._wfd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._wfd, fcntl.LOCK_UN)

    def _tx(self, sql: str, rows: list[tuple]) -> int:
        with self._writing():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                cur.executemany(sql, rows)
                n = self._conn.total_changes - before
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
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
        return self._tx(_INSERT_EVENT, event_rows(events))

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
        with self._writing():
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
                            cur.executemany(_INSERT_EVENT, event_rows(batch))
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


