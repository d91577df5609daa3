"""SQLite back-end (WAL mode): the embedded default store."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import Event, Product
from shopsense.store._base import (
    EXPOSURE_FIELDS,
    EventArrays,
    Exposure,
    Store,
    event_key,
    exposure_dict,
    exposure_row,
)

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


def _create_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only (0600), like the API
    keys: it holds every shopper's events. SQLite gives its -wal and -shm files the mode of
    the database file. An existing file keeps the mode its owner chose."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class SQLiteStore(Store):
    """Products as JSON rows keyed by id, events as columns.

    One connection guarded by a lock: SQLite serialises writers anyway, and WAL
    lets readers in other processes see a consistent snapshot during a write.
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

    # -- writes ----------------------------------------------------------------
    def _tx(self, sql: str, rows: list[tuple]) -> int:
        with self._lock:
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
        rows = [
            (event_key(e), e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(),
             e.session_id, e.query, e.quantity, e.price)
            for e in events
        ]
        return self._tx(
            "INSERT OR IGNORE INTO events(key, user_id, item_id, type, ts, session_id, query, "
            "quantity, price) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )

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
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

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

    def iter_products(self, batch_size: int = 1000) -> Iterator[list[Product]]:
        last = 0
        while True:
            rows = self._query(
                "SELECT seq, data FROM products WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, batch_size),
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [Product.model_validate_json(d) for _, d in rows]

    def product_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM products ORDER BY seq")]

    def count_products(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM products")[0][0])

    def count_events(self, user_id: str | None = None) -> int:
        if user_id is None:
            return int(self._query("SELECT COUNT(*) FROM events")[0][0])
        return int(self._query("SELECT COUNT(*) FROM events WHERE user_id = ?", (user_id,))[0][0])

    def event_type_counts(self) -> dict[str, int]:
        return dict(self._query("SELECT type, COUNT(*) FROM events GROUP BY type"))

    def events(
        self, user_id: str | None = None, session_id: str | None = None, since: float | None = None
    ) -> EventArrays:
        where, args = [], []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        if since is not None:
            where.append("ts > ?")
            args.append(since)
        sql = "SELECT user_id, item_id, type, ts, session_id, query, quantity FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY ts, seq", tuple(args))
        cols = list(zip(*rows)) if rows else [()] * 7
        return EventArrays(
            user_id=np.array(cols[0], dtype=object),
            item_id=np.array(cols[1], dtype=object),
            type=np.array(cols[2], dtype=object),
            timestamp=np.array(cols[3], dtype=np.float64),
            session_id=np.array(cols[4], dtype=object),
            query=np.array(cols[5], dtype=object),
            quantity=np.array(cols[6], dtype=np.int64),
        )

    def sales(self, since: float | None = None, until: float | None = None) -> list[tuple[Any, ...]]:
        where, args = ["type = 'purchase'"], []
        if since is not None:
            where.append("ts >= ?")
            args.append(float(since))
        if until is not None:
            where.append("ts < ?")
            args.append(float(until))
        return [tuple(r) for r in self._query(
            "SELECT user_id, item_id, ts, session_id, quantity, price FROM events WHERE " + " AND ".join(where)
            + " ORDER BY ts, seq", tuple(args))]

    def exposures(self, since: float | None = None, until: float | None = None,
                  user_id: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if since is not None:
            where.append("ts >= ?")
            args.append(float(since))
        if until is not None:
            where.append("ts < ?")
            args.append(float(until))
        if user_id is not None:
            where.append("user_key = ?")
            args.append(self.user_key(user_id))
        sql = f"SELECT {_EXPOSURE_COLS} FROM exposures"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [exposure_dict(r) for r in self._query(sql + " ORDER BY ts, seq", tuple(args))]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


