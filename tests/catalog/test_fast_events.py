"""The fast path of event ingest (columns checked together, the undecided rows row by row)
stores the same events, in the same order and batches, and writes the same rejects as the
row-by-row path, for CSV, JSONL and Parquet."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shopsense.catalog import Event, ingest
from shopsense.store import SQLiteStore

COLS = ["user_id", "item_id", "type", "timestamp", "session_id", "query", "quantity", "price", "note"]

#: rows the columns decide and rows they leave to the row-by-row validator, good and bad
ODD: list[dict[str, Any]] = [
    {"user_id": "u/1", "item_id": "i", "type": "view", "timestamp": "1700000000"},  # '/' in a user id
    {"user_id": "..", "item_id": "i", "type": "view", "timestamp": "1700000000"},
    {"user_id": "u", "item_id": "..", "type": "view", "timestamp": "1700000000"},
    {"user_id": "u", "item_id": "a/b", "type": "view", "timestamp": "1700000001"},  # good: '/' in an item
    {"user_id": " padded ", "item_id": "i", "type": "view", "timestamp": "1700000002"},  # good, stripped
    {"user_id": "usér", "item_id": "ítem", "type": "click", "timestamp": "1700000003"},  # good, not ASCII
    {"user_id": "u", "item_id": "i", "type": "teleport", "timestamp": "1700000000"},
    {"user_id": "u", "item_id": "", "type": "view", "timestamp": "1700000000"},  # item required
    {"user_id": "u", "item_id": "", "type": "search", "timestamp": "1700000004", "query": "red shoes"},
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "2023-11-14T22:13:25Z"},  # good, ISO
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1700000005.123457"},  # good, fraction
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1700000000000"},  # milliseconds
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1e17"},
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "-5"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000006", "quantity": "0"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000006", "quantity": "99999999999"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000007", "quantity": "2",
     "price": "19.99"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000008", "price": "nan"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000008", "price": "inf"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000008", "price": "-1"},
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000009", "price": "1e3"},  # good
    {"user_id": "u", "item_id": "i", "type": "purchase", "timestamp": "1700000010", "price": "2000000000"},
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1700000011", "session_id": "s 1",
     "note": "unknown column"},
    {"user_id": "u" * 257, "item_id": "i", "type": "view", "timestamp": "1700000000"},
    {"user_id": "u\x01", "item_id": "i", "type": "view", "timestamp": "1700000000"},
    {"user_id": "", "item_id": "i", "type": "view", "timestamp": "1700000000"},
    {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1700000012", "quantity": " 3 "},
]


def _rows(n: int = 300) -> list[dict[str, Any]]:
    types = ["view", "click", "add_to_cart", "purchase"]
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rows.append({"user_id": f"u{i % 13}", "item_id": f"i-{i % 29}", "type": types[i % 4],
                     "timestamp": str(1_600_000_000 + i // 3), "quantity": str(1 + i % 3),
                     "price": f"{(i % 50) * 1.25:.2f}" if i % 5 else ""})
        if i % 11 == 5:
            rows.append(ODD[(i // 11) % len(ODD)])
        if i % 37 == 0:
            rows.append(rows[-1])  # a repeated event: stored once
    return rows + ODD


def _write(path: Path, rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt in ("csv", "csv_plain"):  # csv_plain: every line one record of the header's width
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            w.writerow(COLS)
            for i, r in enumerate(rows):
                w.writerow([r.get(c, "") for c in COLS])
                if fmt == "csv_plain":
                    continue
                if i == 40:
                    fh.write("\n")  # a blank line
                if i == 80:
                    fh.write("u,i,view,1700000000,,,,,,surplus\n")  # a cell too many
                if i == 90:
                    fh.write("u2,i2,view,1700000100\n")  # a short row: good
        return

    def typed(r: dict[str, Any]) -> dict[str, Any]:  # numbers as numbers where they are plain
        out: dict[str, Any] = {}
        for k, v in r.items():
            if v == "":
                continue
            if k in ("timestamp", "quantity", "price"):
                try:
                    v = int(v) if v.lstrip("-").isdigit() else float(v)
                except ValueError:
                    pass
            out[k] = v
        return out

    if fmt == "jsonl":
        path.write_text("".join(json.dumps(typed(r)) + "\n" for r in rows), encoding="utf-8")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: [r.get(c) or None for r in rows] for c in COLS})  # all text columns
    pq.write_table(table, path, row_group_size=97)
    num = pa.table({"user_id": [f"u{i}" for i in range(50)], "item_id": ["i"] * 50,
                    "type": ["view"] * 50, "timestamp": [1_600_000_000.0 + i + (0.5 if i % 10 == 0 else 0) for i in range(50)],
                    "quantity": [1 + i % 2 for i in range(50)],
                    "price": [None if i % 7 == 0 else float("nan") if i == 3 else i * 1.5 for i in range(50)]})
    pq.write_table(num, path.with_name("typed.parquet"))


def _stored(db: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT seq, user_id, item_id, type, ts, session_id, query, quantity, price "
                           "FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


def _run(path: Path, tmp: Path, name: str, fast: bool, monkeypatch: pytest.MonkeyPatch
         ) -> tuple[Any, list[Any], str, Any, int]:
    store = SQLiteStore(tmp / f"{name}.sqlite3")
    batches: list[int] = []
    validated = 0
    validate = Event.model_validate

    def counted(*a: Any, **k: Any) -> Any:
        nonlocal validated
        validated += 1
        return validate(*a, **k)

    monkeypatch.setattr(Event, "model_validate", counted)

    def write(batch: Any) -> int:
        batches.append(len(batch))
        return store.add_events(batch)

    try:
        rep = ingest(path, "events", write, batch_size=7, rejects_path=tmp / f"{name}.rej", fast=fast)
        again = ingest(path, "events", write, batch_size=7, fast=fast)  # idempotent re-run
    finally:
        store.close()
        monkeypatch.undo()
    rej = (tmp / f"{name}.rej").read_text(encoding="utf-8") if rep.rejected else ""
    return rep, _stored(tmp / f"{name}.sqlite3"), rej, (batches, again.as_dict()), validated


@pytest.mark.parametrize("fmt", ["csv", "csv_plain", "jsonl", "parquet"])
def test_fast_path_stores_and_rejects_as_row_by_row(tmp_path: Path, fmt: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """csv: odd lines (blank, short, long) send the file through the csv module; csv_plain:
    the lines are read into columns by pyarrow's CSV reader (issue 16), with the same results."""
    import pyarrow.csv as pcsv

    path = tmp_path / f"events.{fmt.split('_')[0]}"
    _write(path, _rows(), fmt)
    files = [path] + ([path.with_name("typed.parquet")] if fmt == "parquet" else [])
    for f in files:
        read: list[int] = []

        def counted_read(*a: Any, read: list[int] = read, read_csv: Any = pcsv.read_csv, **k: Any) -> Any:
            table = read_csv(*a, **k)
            read.append(table.num_rows)
            return table

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pcsv, "read_csv", counted_read)
            fast = _run(f, tmp_path, f"fast_{f.stem}", True, monkeypatch)
        # pyarrow read the plain file (twice: the ingest and its re-run), and no other
        assert read == ([len(_rows())] * 2 if fmt == "csv_plain" else []), (fmt, read)
        slow = _run(f, tmp_path, f"slow_{f.stem}", False, monkeypatch)
        rep_f, rep_s = fast[0].as_dict(), slow[0].as_dict()
        for rep in (rep_f, rep_s):
            rep.pop("rejects_path")
        assert rep_f == rep_s
        assert fast[1] == slow[1]  # the same rows, values and order
        assert fast[2] == slow[2]  # the same rejects file, byte for byte
        assert fast[3] == slow[3]  # the same batches; the re-run stores nothing new
        assert fast[3][1]["stored"] == 0 and fast[3][1]["duplicates"] == rep_f["stored"] + rep_f["duplicates"]
        assert rep_f["stored"] > 0 and (rep_f["rejected"] > 10 or f.stem == "typed")
        # the plain rows were decided by the columns: pydantic saw only the odd ones
        assert fast[4] < slow[4] / 3, (f.name, fast[4], slow[4], rep_f)


def test_ingest_reads_ahead_in_order_and_its_reader_stops_with_it(tmp_path: Path) -> None:
    """The next blocks are read and checked in a thread while the store commits: the store still
    gets the rows in file order, and a store that fails stops the ingest and its reader."""
    import threading

    path = tmp_path / "events.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "type", "timestamp"])
        for i in range(30_000):  # several blocks of the reader
            w.writerow([f"u{i % 97}", f"i{i}", "view", 1_700_000_000 + i])
    got: list[str] = []

    def write(batch: Any) -> int:
        got.extend(e.item_id for e in batch)
        return len(batch)

    rep = ingest(path, "events", write, batch_size=1000)
    assert rep.stored == 30_000 and got == [f"i{i}" for i in range(30_000)]

    calls = 0

    def failing(batch: Any) -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="disk is full"):
        ingest(path, "events", failing, batch_size=1000)
    assert calls == 1
    assert not any(t.name == "shopsense-ingest-read" for t in threading.enumerate())
