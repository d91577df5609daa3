"""The SQLite events layout of issue 16 ("Faster bulk ingest"): the identity of an event is a
UNIQUE index on its fields (no hash key), the session index is partial, and a home written with
the first layout (schema version 0: ``key TEXT UNIQUE``) opens, is migrated in place and keeps
every event, its seq and its order."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopsense.catalog import Event, EventType
from shopsense.errors import ShopsenseError
from shopsense.store import SQLiteStore

SCHEMA_VERSION = SQLiteStore.schema_version

#: the events table of schema version 0, as shopsense created it before issue 16
V0_EVENTS = """
CREATE TABLE events (
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
CREATE INDEX events_user ON events(user_id, ts);
CREATE INDEX events_session ON events(session_id, ts);
CREATE INDEX events_ts ON events(ts);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _events() -> list[Event]:
    out = []
    for i in range(40):
        out.append(Event(user_id=f"u{i % 7}", item_id=f"i{i % 5}", type=EventType.VIEW,
                         timestamp=T0 + timedelta(seconds=i // 3), session_id=f"s{i % 4}" if i % 2 else None,
                         quantity=1 + i % 2, price=None if i % 3 else 9.5))
    out.append(Event(user_id="u1", type=EventType.SEARCH, query="red shoes", timestamp=T0))
    return out


def _v0_key(e: Event) -> str:
    """The key version 0 stored (store/_base.py event_key at the time)."""
    raw = "\x1f".join([e.user_id, e.item_id or "", e.type.value, f"{e.timestamp.timestamp():.6f}",
                       e.session_id or "", e.query or "", str(e.quantity)])
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _write_v0(path: Path, events: list[Event], extra_rows: list[tuple] = ()) -> None:  # type: ignore[assignment]
    con = sqlite3.connect(path)
    con.executescript(V0_EVENTS)
    con.executemany("INSERT INTO events(key, user_id, item_id, type, ts, session_id, query, quantity, price) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    [(_v0_key(e), e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(), e.session_id,
                      e.query, e.quantity, e.price) for e in events] + list(extra_rows))
    con.execute("INSERT INTO meta VALUES ('exposure_secret', 'abc')")
    con.commit()
    assert con.execute("PRAGMA user_version").fetchone()[0] == 0
    con.close()


def _rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT seq, user_id, item_id, type, ts, session_id, query, quantity, price "
                           "FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


def _columns(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute("PRAGMA table_info(events)")]
    finally:
        con.close()


def test_a_version_0_home_opens_migrated_and_keeps_its_events(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    events = _events()
    _write_v0(db, events)
    con = sqlite3.connect(db)  # the newest events were erased: their seqs must not come back
    con.execute("DELETE FROM events WHERE seq > 38")
    con.commit()
    con.close()
    before = _rows(db)
    assert len(before) == 38

    store = SQLiteStore(db)
    try:
        assert _rows(db) == before  # every row, its seq and its values
        assert "key" not in _columns(db)
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        con.close()
        assert {"events_identity", "events_user", "events_session", "events_ts"} <= names
        assert store.get_meta("exposure_secret") == "abc"
        assert store.count_events() == 38 and store.count_events("u1") == sum(1 for r in before if r[1] == "u1")
        arr = store.events()
        assert [float(t) for t in arr.timestamp] == sorted(r[4] for r in before)
        # re-ingesting what is stored adds nothing; the two erased events come back after seq 41
        assert store.add_events(events) == 3
        seqs = [r[0] for r in _rows(db)]
        assert seqs[:38] == [r[0] for r in before] and min(seqs[38:]) > 41
    finally:
        store.close()
    # opened again: already at the current version, nothing changes
    after = _rows(db)
    SQLiteStore(db).close()
    assert _rows(db) == after


def test_migration_keeps_the_first_of_rows_that_only_hand_written_keys_told_apart(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    events = _events()[:5]
    e = events[2]
    twin = ("hand-written", e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(), e.session_id, e.query,
            e.quantity, 99.0)
    _write_v0(db, events, [twin])
    with_twin = _rows(db)
    SQLiteStore(db).close()
    assert _rows(db) == with_twin[:5]


def test_an_empty_version_0_home_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    _write_v0(db, [])
    store = SQLiteStore(db)
    try:
        assert store.add_events(_events()[:3]) == 3 and [r[0] for r in _rows(db)] == [1, 2, 3]
    finally:
        store.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    SQLiteStore(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(ShopsenseError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade shopsense"):
        SQLiteStore(db)


def test_identity_is_every_field_but_the_price(tmp_path: Path) -> None:
    """NULLs never conflict in a UNIQUE index: the identity reads a missing item, session or
    query as '' (as the old hash key did), so an event without them is still stored once."""
    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        e = Event(user_id="u", type=EventType.SEARCH, query="shoes", timestamp=T0)
        assert store.add_events([e, e.model_copy(update={"price": 3.0})]) == 1
        assert store.add_events([e]) == 0
        assert store.add_event_batches([[e], [e.model_copy(update={"session_id": "s"})]]) == [0, 1]
        changed = [e.model_copy(update={k: v}) for k, v in (
            ("user_id", "v"), ("query", "boots"), ("quantity", 2), ("timestamp", T0 + timedelta(microseconds=1)),
            ("type", EventType.CLICK), ("item_id", "i"))]
        assert store.add_events(changed) == len(changed)
        assert store.count_events() == 2 + len(changed)
    finally:
        store.close()


@pytest.mark.parametrize(("where", "index"), [
    ("user_id = ?", "events_user"),
    ("session_id = ?", "events_session"),  # partial (session_id IS NOT NULL), still chosen
    ("ts > ?", "events_ts"),
    ("1", "events_ts"),  # every event in time order (training), ties by seq without a sort
])
def test_event_reads_use_an_index(tmp_path: Path, where: str, index: str) -> None:
    db = tmp_path / "store.sqlite3"
    SQLiteStore(db).close()
    con = sqlite3.connect(db)
    try:
        plan = " ".join(r[3] for r in con.execute(
            f"EXPLAIN QUERY PLAN SELECT user_id, item_id, type, ts, session_id, query, quantity FROM events "
            f"WHERE {where} ORDER BY ts, seq", ("x",) * where.count("?")))
    finally:
        con.close()
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_a_row_breaking_not_null_is_refused_not_skipped(tmp_path: Path) -> None:
    """Only an event already stored is skipped: INSERT OR IGNORE would also have dropped a row
    without a user id, silently (the serving writer relies on the refusal)."""
    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        good = Event(user_id="u", item_id="i", type=EventType.VIEW, timestamp=T0)
        bad = Event.model_construct(**{**good.__dict__, "user_id": None})
        with pytest.raises(sqlite3.IntegrityError):
            store.add_events([good, bad])
        assert store.count_events() == 0  # the batch is all or nothing
        assert store.add_event_batches([[good], [bad]])[0] == 1
        assert store.count_events() == 1
    finally:
        store.close()


def test_a_new_file_has_16k_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new, old = tmp_path / "new.sqlite3", tmp_path / "old.sqlite3"
    SQLiteStore(new).close()
    _write_v0(old, _events()[:3])  # 4 KiB pages, the default
    SQLiteStore(old).close()
    sizes = []
    for db in (new, old):
        con = sqlite3.connect(db)
        sizes.append(con.execute("PRAGMA page_size").fetchone()[0])
        con.close()
    assert sizes == [16384, 4096]


# -- bulk writes (issue 16: multi-row statements, read indexes built after a bulk load) ----------
def _indexes(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                          "AND tbl_name = 'events' AND sql IS NOT NULL")}
    finally:
        con.close()


def _stored_rows(con: sqlite3.Connection) -> list[tuple]:
    return con.execute("SELECT seq, user_id, item_id, type, ts, session_id, query, quantity, price "
                       "FROM events ORDER BY seq").fetchall()


#: one INSERT per row, as the store wrote events before its multi-row statements
_ONE_ROW = ("INSERT INTO events(user_id, item_id, type, ts, session_id, query, quantity, price) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")


@pytest.mark.parametrize("n", [1, 499, 500, 1234])
def test_multi_row_inserts_store_what_one_insert_per_row_stores(tmp_path: Path, n: int) -> None:
    """The same rows, seqs and skipped repeats as one INSERT per row, for a batch with only the
    always-present columns (4 bound per row) and one that uses every column."""
    narrow = [Event(user_id=f"u{i % 7}", item_id=f"i{i % 11}", type=EventType.VIEW,
                    timestamp=T0 + timedelta(seconds=i // 3)) for i in range(n)]
    wide = [*narrow, Event(user_id="u1", type=EventType.SEARCH, query="red mug", session_id="s1", timestamp=T0),
            Event(user_id="u2", item_id="i3", type=EventType.PURCHASE, quantity=2, price=9.5, timestamp=T0)]
    for k, batch in enumerate((narrow, wide, narrow + narrow[: n // 2 + 1])):  # the last repeats rows
        stored = []
        for how in ("store", "one row per insert"):
            path = tmp_path / f"{k}-{how}.sqlite3"
            store = SQLiteStore(path)
            if how == "store":
                new = store.add_events(batch)
                store.close()
            else:
                store.close()
                con = sqlite3.connect(path)
                before = con.total_changes
                con.executemany(_ONE_ROW, [(e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(),
                                            e.session_id, e.query, e.quantity, e.price) for e in batch])
                new = con.total_changes - before
                con.commit()
                con.close()
            con = sqlite3.connect(path)
            stored.append((new, _stored_rows(con)))
            con.close()
        assert stored[0] == stored[1]
        assert stored[0][0] == len({(e.user_id, e.item_id, e.type, e.timestamp, e.query) for e in batch})


def test_a_bulk_load_builds_the_read_indexes_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path)
    try:
        every = _indexes(path)
        assert {"events_identity", "events_user", "events_session", "events_ts"} <= every
        with store.bulk_events():
            assert _indexes(path) == every - {"events_user", "events_session", "events_ts"}  # dedupe kept
            assert store.add_events(_events()) == len(_events())
            assert store.add_events(_events()) == 0  # the identity index still skips repeats
        assert _indexes(path) == every
        with store.bulk_events():  # a table that holds events keeps its indexes: readers use them
            assert _indexes(path) == every
            store.add_events([Event(user_id="z", item_id="i", type=EventType.VIEW, timestamp=T0)])
        assert _indexes(path) == every
    finally:
        store.close()


def test_an_interrupted_bulk_load_leaves_every_index(tmp_path: Path) -> None:
    """A failing load still builds them; a killed one (they were dropped and never built) gets
    them back when the file is next opened, with every event kept."""
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path)
    every = _indexes(path)
    with pytest.raises(RuntimeError), store.bulk_events():
        store.add_events(_events())
        raise RuntimeError("the file ended badly")
    assert _indexes(path) == every
    store.close()

    fresh = tmp_path / "killed.sqlite3"
    code = ("import os, sys\n"
            "from shopsense.store import SQLiteStore\n"
            "store = SQLiteStore(sys.argv[1])\n"
            "with store.bulk_events():\n"
            "    store.add_events(__import__('pickle').loads(bytes.fromhex(sys.argv[2])))\n"
            "    os._exit(9)  # killed in the middle of the load\n")
    proc = subprocess.run([sys.executable, "-c", code, str(fresh), pickle.dumps(_events()).hex()],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 9, proc.stderr
    assert "events_user" not in _indexes(fresh)
    store = SQLiteStore(fresh)
    try:
        assert _indexes(fresh) == every
        assert store.count_events() == len(_events())
    finally:
        store.close()
