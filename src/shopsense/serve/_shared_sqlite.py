"""Shared serve state in one SQLite file: correct across the workers of one machine.

WAL mode lets readers run beside the one writer; every rate-limit hit is one short
``BEGIN IMMEDIATE`` transaction, so the token buckets of N processes never race.
Nothing here needs to survive a power cut (counters and a feed of recent changes),
so commits do not wait for the disk (``synchronous=OFF``; a process crash loses
nothing, the OS still holds the pages). A worker that starts reads the feed's head
and catches up from there, so a file left by an earlier run is harmless.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no bell, every request reads the head
    fcntl = None  # type: ignore[assignment]

from shopsense.serve._shared import FEED_KEEP, Change, FeedGap, SharedState

__all__ = ["SQLiteSharedState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (k TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, origin TEXT NOT NULL,
    users TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS query_vectors (k TEXT PRIMARY KEY, v BLOB NOT NULL, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS query_vectors_at ON query_vectors(at);
"""

#: query vectors kept by housekeeping (1.5 kB each at 384 dimensions: ~30 MB)
VECTORS_KEEP = 20_000


class SQLiteSharedState(SharedState):
    name = "sqlite"
    errors = (sqlite3.OperationalError,)
    local_reads = True

    def __init__(self, path: str | Path, keep: int = FEED_KEEP) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._rlock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rdb: sqlite3.Connection | None = None
        with self._lock:
            self._conn.executescript(_SCHEMA)
        self._bell = _Bell(self.path.with_name(self.path.name + ".bell")) if fcntl is not None else None

    def _open(self) -> sqlite3.Connection:
        # 30 s: under a burst every worker queues on the write lock; never fail a request for it
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        return db

    @property
    def _conn(self) -> sqlite3.Connection:
        # (re)opened on use: an app whose lifespan runs twice (tests) closes it in between
        if self._db is None:
            self._db = self._open()
        return self._db

    @property
    def _rconn(self) -> sqlite3.Connection:
        # reads have their own connection and lock: in WAL mode they never wait for a writer,
        # and must not wait behind this process's writes queued on the write lock either
        if self._rdb is None:
            self._rdb = self._open()
        return self._rdb

    def _write(self) -> _Tx:
        return _Tx(self, "BEGIN IMMEDIATE")

    def _read(self) -> _Tx:
        return _Tx(self, "BEGIN", read=True)

    # -- rate limits ---------------------------------------------------------------
    def take(self, bucket: str, per_minute: int, n: int) -> tuple[int, float]:
        rate = per_minute / 60.0
        with self._write():
            now = time.time()  # wall clock: the processes share it, not their monotonic clocks
            row = self._conn.execute("SELECT tokens, at FROM buckets WHERE k = ?", (bucket,)).fetchone()
            tokens, at = row if row else (float(per_minute), now)
            tokens = min(float(per_minute), tokens + max(0.0, now - at) * rate)
            taken, wait = min(max(1, n), int(tokens)), 0.0
            if taken >= 1:
                tokens -= taken
            else:
                wait = (1.0 - tokens) / rate
            self._conn.execute("INSERT OR REPLACE INTO buckets(k, tokens, at) VALUES (?, ?, ?)",
                               (bucket, tokens, now))
        return taken, wait

    # -- change feed ---------------------------------------------------------------
    def publish(self, kind: str, origin: str, users: tuple[tuple[str, str], ...] = ()) -> int:
        change = Change(0, kind, origin, users)
        with self._write():
            cur = self._conn.execute("INSERT INTO changes(kind, origin, users, at) VALUES (?, ?, ?, ?)",
                                     (kind, origin, change.payload(), time.time()))
            seq = int(cur.lastrowid or 0)
        if self._bell is not None:
            self._bell.ring()  # after the commit: whoever hears it finds the change in the file
        return seq

    def bell(self) -> int | None:
        return self._bell.value() if self._bell is not None else None

    def _head(self, conn: sqlite3.Connection) -> int:
        # AUTOINCREMENT keeps the last number here even after old rows are deleted
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        with self._read():
            return self._head(self._rconn)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._read():  # one snapshot for the head and the rows
            head = self._head(self._rconn)
            if head <= seq:
                if head < seq:  # the file was replaced or emptied
                    raise FeedGap(head)
                return []
            rows = self._rconn.execute(
                "SELECT seq, kind, origin, users FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit)).fetchall()
        if not rows or rows[0][0] != seq + 1:
            raise FeedGap(head)
        return [Change(int(s), k, o, Change.users_of(u)) for s, k, o, u in rows]

    # -- query vectors -----------------------------------------------------------------
    def vector_get(self, key: str) -> bytes | None:
        with self._read():
            row = self._rconn.execute("SELECT v FROM query_vectors WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def vector_put(self, key: str, value: bytes) -> None:
        with self._write():
            self._conn.execute("INSERT OR REPLACE INTO query_vectors(k, v, at) VALUES (?, ?, ?)",
                               (key, value, time.time()))

    # -- upkeep ----------------------------------------------------------------------
    def housekeeping(self) -> None:
        with self._write():
            # a bucket untouched for over a minute is full again: the same as no row
            self._conn.execute("DELETE FROM buckets WHERE at < ?", (time.time() - 61.0,))
            self._conn.execute("DELETE FROM changes WHERE seq <= ?", (self._head(self._conn) - self.keep,))
            self._conn.execute("DELETE FROM query_vectors WHERE at < (SELECT at FROM query_vectors "
                               "ORDER BY at DESC LIMIT 1 OFFSET ?)", (VECTORS_KEEP,))

    def close(self) -> None:
        with self._lock, self._rlock:
            for db in (self._db, self._rdb):
                if db is not None:
                    db.close()
            self._db = self._rdb = None


class _Bell:
    """A publish counter in 8 bytes of a memory-mapped file beside the state file.

    Reading the feed's head is a SQLite transaction (~10% of a cached recommendation's CPU
    when every request did it); reading the bell is a memory load. Publishers increment it
    after their commit, under an exclusive flock (read-modify-write across processes);
    readers never lock: a torn or stale read only makes a reader ask the head once more.
    Hand-made because no library offers a cross-process counter on a file (the stdlib's
    multiprocessing.Value needs a common parent; the workers are spawned by uvicorn)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self.fd).st_size < 8:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self.fd).st_size < 8:
                    os.ftruncate(self.fd, 8)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.map = mmap.mmap(self.fd, 8)

    def value(self) -> int:
        return int.from_bytes(self.map[:8], "little")

    def ring(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            self.map[:8] = ((self.value() + 1) & (2**64 - 1)).to_bytes(8, "little")
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


class _Tx:
    """``with``: one transaction on the state's write (or read) connection, committed or
    rolled back."""

    def __init__(self, state: SQLiteSharedState, begin: str, read: bool = False) -> None:
        self.state, self.begin, self.read = state, begin, read
        self.lock = state._rlock if read else state._lock

    def _db(self) -> sqlite3.Connection:
        return self.state._rconn if self.read else self.state._conn

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            self._db().execute(self.begin)
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self._db().execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
