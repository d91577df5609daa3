"""Property-based ingestion of hostile files (hostile-input issue): for every format, files
mixing good rows with rows that each carry one defect. Whatever the mix:

- no exception escapes ``ingest``;
- every good row is stored and every bad row rejected: ``stored + rejected == read``;
- every reject names the line (or Parquet row) and the field of its defect, in the report
  and in the rejects file.

``SHOPSENSE_FUZZ_EXAMPLES`` (default 80 per format and kind) sets the number of files generated;
runs are derandomized so the default test run is repeatable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopsense.catalog import ingest
from shopsense.store import SQLiteStore

EXAMPLES = int(os.environ.get("SHOPSENSE_FUZZ_EXAMPLES", "80"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

#: a store per example: on tmpfs where there is one, so fsyncs cost nothing
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
#: stands for a byte that is not UTF-8 (0xff) until the file is written
MARK = "\ue000"
#: stands for a stray quote opening the id cell (the csv writer would escape a real one)
QUOTE = "\ue001"
ROW = "(row)"  # a defect of the whole row rather than of one field

# -- good rows -------------------------------------------------------------------------------
_word = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8)
#: free text: punctuation (quotes, commas, braces) and spaces of every kind
_text = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters=MARK + QUOTE),
                min_size=1, max_size=15).filter(str.strip)
_ts = st.one_of(st.integers(0, 1_750_000_000),
                st.datetimes(min_value=__import__("datetime").datetime(1971, 1, 1),
                             max_value=__import__("datetime").datetime(2024, 12, 31)).map(
                    lambda d: d.isoformat() + "Z"))


@st.composite
def good_event(draw: Any, i: int, fmt: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["view", "click", "add_to_cart", "purchase", "search"]))
    row: dict[str, Any] = {"user_id": f"{draw(_word)}-{i}", "type": kind,
                           "timestamp": draw(st.integers(0, 1_750_000_000)) if fmt == "parquet" else draw(_ts)}
    row["item_id"] = None if kind == "search" else draw(_word)
    if kind == "search":
        row["query"] = draw(_text)
    row["quantity"] = draw(st.integers(1, 1_000_000))
    row["price"] = draw(st.none() | st.floats(0, 1e6, allow_nan=False))
    return row


@st.composite
def good_product(draw: Any, i: int, fmt: str) -> dict[str, Any]:
    return {"id": f"{draw(_word)}-{i}", "title": draw(_text), "price": draw(st.none() | st.floats(0, 1e6)),
            "rating": draw(st.none() | st.floats(0, 5)), "rating_count": draw(st.integers(0, 10**9)),
            "created_at": draw(st.integers(0, 1_750_000_000)) if fmt == "parquet" else draw(_ts),
            "attributes": json.dumps({"size": draw(_word)}) if draw(st.booleans()) else None,
            "colour": draw(st.none() | _word)}


# -- defects: (field the reject must name, how to apply it), per kind and format -----------------
Defect = tuple[str, Any]  # (field, value) or (ROW, a marker the writer understands)
NUMERIC_EVENT = [("price", math.inf), ("price", -math.inf), ("price", math.nan), ("price", -1.0),
                 ("price", 1e300), ("quantity", 0), ("quantity", -3), ("quantity", 2**62),
                 ("timestamp", 10**17), ("timestamp", -5), ("timestamp", 253402300800),
                 ("timestamp", 1_700_000_000_000)]
TEXT_EVENT = [("price", "inf"), ("price", "nan"), ("price", "abc"), ("price", "1e10"),
              ("quantity", 99999999999999999999), ("quantity", "1.5"), ("quantity", "x"),
              ("timestamp", 99999999999999999999), ("timestamp", "1e17"),
              ("timestamp", "0001-01-01T00:00:00+14:00"), ("timestamp", "9999-12-31T00:00:00Z"),
              ("timestamp", "yesterday"), ("timestamp", "nan")]
ID_EVENT = [("user_id", "a/b"), ("user_id", "."), ("user_id", ".."), ("user_id", "x\x01y"),
            ("user_id", "\x7f"), ("user_id", None), ("type", "teleport"), ("type", None), ("item_id", "..")]
NUMERIC_PRODUCT = [("price", math.inf), ("price", math.nan), ("price", -2.0), ("rating", 7.0),
                   ("rating", math.nan), ("rating_count", -1), ("rating_count", 2**40),
                   ("created_at", 10**17), ("created_at", -10)]
TEXT_PRODUCT = [("price", "inf"), ("price", "NaN"), ("rating_count", 99999999999999999999),
                ("created_at", "9999-01-01"), ("created_at", "0001-01-01T00:00:00+14:00"),
                ("attributes", "{bad"), ("attributes", "[1,2]"), ("attributes", "[" * 5000),
                ("category", "[1, 2"), ("id", "."), ("id", "a\x02"), ("title", None)]
RAW_CSV = [("user_id", "utf8"), (ROW, "extra_cell"), (ROW, "open_quote")]
RAW_JSONL = [("user_id", "utf8"), (ROW, "bad_json"), (ROW, "not_object"), (ROW, "deep"),
             ("user_id", "surrogate")]


def defects(kind: str, fmt: str) -> list[Defect]:
    if kind == "events":
        out = NUMERIC_EVENT + ID_EVENT + ([] if fmt == "parquet" else TEXT_EVENT)
        return out + {"csv": RAW_CSV, "jsonl": RAW_JSONL, "parquet": []}[fmt]
    out = NUMERIC_PRODUCT + [d for d in TEXT_PRODUCT if fmt != "parquet" or d[0] in ("id", "title")]
    raw = {"csv": RAW_CSV, "jsonl": RAW_JSONL, "parquet": []}[fmt]
    return out + [("id", "duplicate")] + [(f if f == ROW else "title", m) for f, m in raw]


# -- writers ---------------------------------------------------------------------------------------
def _bad_value(row: dict[str, Any], field: str, how: Any) -> None:
    if how == "utf8":
        row[field] = f"ab{MARK}cd"
    elif how == "surrogate":
        row[field] = "a\ud800b"
    else:
        row[field] = how


def write(path: Path, rows: list[dict[str, Any]], raw: dict[int, str], fmt: str, cols: list[str]) -> None:
    """Write ``rows``; ``raw[i]`` replaces row i by a broken line (JSONL) or adds a cell (CSV)."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for i, r in enumerate(rows):
            cells = ["" if r.get(c) is None else str(r[c]) for c in cols]
            if raw.get(i) == "open_quote":  # ids are letters and digits: never quoted by the writer
                k = cols.index("user_id" if "user_id" in cols else "id")
                cells[k] = QUOTE + cells[k]
            w.writerow(cells + (["surplus"] if raw.get(i) == "extra_cell" else []))
        data = buf.getvalue().encode("utf-8").replace(MARK.encode(), b"\xff").replace(QUOTE.encode(), b'"')
        path.write_bytes(data)
    elif fmt == "jsonl":
        lines = []
        for i, r in enumerate(rows):
            how = raw.get(i)
            line = {"bad_json": '{"user_id": ', "not_object": "[1, 2]", "deep": "[" * 100_000}.get(how or "")
            lines.append(line if line is not None else json.dumps({k: v for k, v in r.items() if v is not None},
                                                                  ensure_ascii=False))
        text = ("\n".join(lines) + "\n").replace("\ud800", "\\ud800")  # a lone surrogate, JSON-escaped
        path.write_bytes(text.encode("utf-8").replace(MARK.encode(), b"\xff"))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"price": pa.float64(), "rating": pa.float64(), "timestamp": pa.float64(),
                 "created_at": pa.float64(), "quantity": pa.int64(), "rating_count": pa.int64()}
        def cell(v: Any, t: Any) -> Any:
            return float(v) if t == pa.float64() and isinstance(v, int) else v

        table = pa.table({c: pa.array([cell(r.get(c), types.get(c)) for r in rows], types.get(c, pa.string()))
                          for c in cols})
        pq.write_table(table, path, row_group_size=7)  # several row groups per file


@st.composite
def hostile_file(draw: Any, kind: str, fmt: str) -> tuple[list[dict[str, Any]], dict[int, str], dict[int, str]]:
    """(rows, raw defects by row, expected reject field by row)."""
    n = draw(st.integers(1, 25))
    make = good_event if kind == "events" else good_product
    rows, raw, bad = [], {}, {}
    choices = defects(kind, fmt)
    for i in range(n):
        row = draw(make(i, fmt))
        if draw(st.integers(0, 2)) == 0:  # about a third of the rows carry one defect
            field, how = draw(st.sampled_from(choices))
            if how == "duplicate":
                first = next((rows[j]["id"] for j in range(i) if j not in bad), None)
                if first is None:
                    rows.append(row)
                    continue
                row["id"] = first
            elif how in ("extra_cell", "open_quote", "bad_json", "not_object", "deep"):
                raw[i] = how
            elif field == "item_id" or (field == "type" and how is None):
                row["type"] = row["type"] if how is not None else None
                if field == "item_id":
                    row["type"] = "view"
                    row["item_id"] = how
            else:
                _bad_value(row, field, how)
            bad[i] = field
        rows.append(row)
    return rows, raw, bad


def _line(i: int, fmt: str) -> int:
    return i + 2 if fmt == "csv" else i + 1  # CSV: the header is line 1; Parquet: row number


def check(kind: str, fmt: str, case: tuple[list[dict[str, Any]], dict[int, str], dict[int, str]]) -> None:
    rows, raw, bad = case
    cols = sorted({k for r in rows for k in r})
    with tempfile.TemporaryDirectory(dir=SCRATCH) as td:
        path = Path(td) / f"{kind}.{fmt}"
        write(path, rows, raw, fmt, cols)
        store = SQLiteStore(Path(td) / "store.sqlite3")
        try:
            writer = store.add_events if kind == "events" else store.upsert_products
            rep = ingest(path, kind, writer, fmt=fmt, rejects_path=Path(td) / "rejects.jsonl",  # type: ignore[arg-type]
                         batch_size=8)
            stored = store.count_events() if kind == "events" else store.count_products()
        finally:
            store.close()
        saved = ([json.loads(x) for x in (Path(td) / "rejects.jsonl").read_text().splitlines()]
                 if rep.rejected else [])
    n_bad = len(bad)
    assert (rep.read, rep.stored, rep.rejected, rep.duplicates) == (len(rows), len(rows) - n_bad, n_bad, 0), (rows, bad,
        rep.rejects)
    assert stored == len(rows) - n_bad
    want = {(_line(i, fmt), field) for i, field in bad.items()}
    assert {(r.line, r.field) for r in rep.rejects} == want
    assert {(r["line"], r["field"]) for r in saved} == want and all(r["reason"] for r in saved)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@SETTINGS
@given(data=st.data())
def test_hostile_events(fmt: str, data: st.DataObject) -> None:
    check("events", fmt, data.draw(hostile_file("events", fmt), label="file"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@SETTINGS
@given(data=st.data())
def test_hostile_products(fmt: str, data: st.DataObject) -> None:
    check("products", fmt, data.draw(hostile_file("products", fmt), label="file"))
