"""Out-of-range numbers (hostile-input issue, family 1): one rule per field for CSV, JSONL
and Parquet; an out-of-range value is a reject naming the line, the field, the value and
the rule, never a traceback, never silently "no value"."""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from shopsense.catalog import Event, Product

FORMATS = ["csv", "jsonl", "parquet"]
GOOD = {"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": 1_700_000_000}


def write_rows(path, rows, fmt):  # type: ignore[no-untyped-def]
    """Rows (dicts of Python values) as a CSV (text cells), JSONL or Parquet file."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            w.writerows([["" if r.get(c) is None else str(r[c]) for c in cols] for r in rows])
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # one Arrow type per column: numbers stay numbers where every row has one
        data = {}
        for c in cols:
            vals = [r.get(c) for r in rows]
            kinds = {type(v) for v in vals if v is not None}
            if kinds <= {int, float} and kinds and all(abs(v) < 2**63 for v in vals if isinstance(v, int)):
                data[c] = pa.array(vals, pa.float64() if float in kinds else pa.int64())
            else:
                data[c] = pa.array([None if v is None else str(v) for v in vals], pa.string())
        pq.write_table(pa.table(data), path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("field, value, rule", [
    ("price", math.inf, "finite number"),
    ("price", "inf", "finite number"),
    ("price", math.nan, "finite number"),
    ("price", "nan", "finite number"),
    ("price", 1e12, "less than or equal to 1000000000"),
    ("price", -1, "greater than or equal to 0"),
    ("quantity", 99999999999999999999, "less than or equal to 1000000"),
    ("quantity", 2**62, "less than or equal to 1000000"),
    ("timestamp", 99999999999999999999, "1970-01-01 to now + 1 day"),
    ("timestamp", 1e17, "1970-01-01 to now + 1 day"),
    ("timestamp", "1e17", "1970-01-01 to now + 1 day"),
    ("timestamp", -86400, "1970-01-01 to now + 1 day"),
    ("timestamp", "0001-01-01T00:00:00+14:00", "1970-01-01 to now + 1 day"),
    ("timestamp", "9999-12-31T23:59:59Z", "1970-01-01 to now + 1 day"),
])
def test_out_of_range_event_values_are_rejects(engine, tmp_path, fmt, field, value, rule):
    """Failed before: inf prices stored as "no price" from CSV, year 9999 accepted, and huge
    timestamps/quantities crashed the whole ingest (OverflowError), storing nothing."""
    rows = [dict(GOOD, item_id="a"), dict(GOOD, item_id="b", **{field: value}), dict(GOOD, item_id="c")]
    f = write_rows(tmp_path / f"e.{fmt}", rows, fmt)
    rep = engine.ingest_events(f, rejects_path=tmp_path / "rej.jsonl")
    line = 3 if fmt == "csv" else 2  # CSV counts the header line
    assert (rep.read, rep.stored, rep.rejected) == (3, 2, 1), rep.rejects
    assert engine.store.count_events() == 2
    (r,) = rep.rejects
    assert (r.line, r.field) == (line, field) and rule in r.reason and r.value
    saved = json.loads((tmp_path / "rej.jsonl").read_text())
    assert saved["line"] == line and saved["field"] == field and rule in saved["reason"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_year_9999_does_not_own_trending(engine, tmp_path, fmt):
    """The event from the far future is refused, so it never ranks first for new users."""
    rows = [dict(GOOD, item_id="x", timestamp="9999-01-01T00:00:00Z"), dict(GOOD, item_id="y")]
    rep = engine.ingest_events(write_rows(tmp_path / f"e.{fmt}", rows, fmt))
    assert rep.stored == 1 and engine.store.events().timestamp.max() < time.time() + 2 * 86400


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [math.inf, math.nan, "inf", "nan", "-1", 2e9])
def test_product_price_one_rule_for_every_format(engine, tmp_path, fmt, value):
    """inf/nan prices: CSV stored inf as "no price" and rejected nan with "greater than or
    equal to 0"; JSONL/Parquet stored nan as "no price". Now one reject, one message per rule."""
    rows = [{"id": "a", "title": "A", "price": 5.0}, {"id": "b", "title": "B", "price": value}]
    rep = engine.ingest_products(write_rows(tmp_path / f"p.{fmt}", rows, fmt))
    assert (rep.stored, rep.rejected) == (1, 1)
    rule = {"-1": "greater than or equal to 0", 2e9: "less than or equal to 1000000000"}.get(value, "finite number")
    assert rep.rejects[0].field == "price" and rule in rep.rejects[0].reason
    assert engine.store.get_product("b") is None


def test_the_rule_is_the_same_in_python_and_over_the_schema():
    from shopsense.catalog import MAX_QUANTITY

    for bad in ({"price": math.inf}, {"quantity": MAX_QUANTITY + 1}, {"timestamp": 1e17},
                {"timestamp": datetime.now(UTC) + timedelta(days=2)}):
        with pytest.raises(pydantic.ValidationError):
            Event.model_validate({**GOOD, **bad})
    assert Event.model_validate({**GOOD, "timestamp": datetime.now(UTC)}).timestamp.tzinfo is UTC
    ms = pytest.raises(pydantic.ValidationError, Event.model_validate, {**GOOD, "timestamp": 1.7e12})
    assert "not milliseconds" in str(ms.value)
    schema = Event.model_json_schema()["properties"]
    assert schema["quantity"]["maximum"] == MAX_QUANTITY
    assert schema["price"]["anyOf"][0]["maximum"] == 1e9 and schema["price"]["anyOf"][0]["minimum"] == 0


def test_a_product_stored_before_a_rule_is_still_readable():
    """Rules apply to input; a store reading back its own JSON never fails on a row it held
    before the rule existed (else one old row would make the whole catalogue unreadable)."""
    old = Product(id="p", title="t").model_copy(update={"created_at": datetime(9999, 1, 1, tzinfo=UTC)})
    assert Product.model_validate_json(old.model_dump_json()).created_at.year == 9999
    with pytest.raises(pydantic.ValidationError, match="created_at"):
        Product.model_validate(json.loads(old.model_dump_json()))
