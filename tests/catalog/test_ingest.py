"""Ingestion on small hand-made files: formats, mapping, rejects, idempotence."""

import json

import pandas as pd
import pytest

from shopsense import ValidationError
from shopsense.catalog import parse_mapping

CSV = (
    "sku,name,maker,cost,colour\n"
    "A1,Cordless Drill 18V,Makita,99.5,blue\n"
    "A2,,Bosch,10,red\n"            # line 3: missing title
    "A3,Hammer,Stanley,-4,black\n"  # line 4: negative price
    "A4,Saw,Bosch,abc,\n"           # line 5: non-numeric price
    "A1,Drill again,Makita,1,\n"    # line 6: duplicate id
    "A5,Tape,3M,2.5,\n"
)
MAP = {"sku": "id", "name": "title", "maker": "brand", "cost": "price"}


def test_csv_ingest_keeps_good_rows_and_reports_bad(engine, tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(CSV)
    rep = engine.ingest_products(f, mapping=MAP, rejects_path=tmp_path / "rej.jsonl")
    assert (rep.read, rep.stored, rep.rejected) == (6, 2, 4)
    assert engine.store.count_products() == 2
    got = {(r.line, r.field) for r in rep.rejects}
    assert got == {(3, "title"), (4, "price"), (5, "price"), (6, "id")}
    lines = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all({"line", "field", "reason"} <= set(x) for x in lines)
    assert "first seen at line 2" in next(x for x in lines if x["line"] == 6)["reason"]
    p = engine.product("A1")
    assert p.brand == "Makita" and p.attributes == {"colour": "blue"}
    assert rep.unknown_columns == ["colour"]


def test_reingest_is_idempotent(engine, tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(CSV)
    engine.ingest_products(f, mapping=MAP)
    engine.ingest_products(f, mapping=MAP)
    assert engine.store.count_products() == 2
    ev = tmp_path / "e.jsonl"
    rows = [{"user_id": "u1", "item_id": "A1", "type": "view", "timestamp": "2024-01-01T10:00:00Z"},
            {"user_id": "u1", "item_id": "A5", "type": "purchase", "timestamp": "2024-01-01T10:05:00Z"}]
    ev.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    first = engine.ingest_events(ev)
    second = engine.ingest_events(ev)
    assert (first.stored, second.stored, second.duplicates) == (2, 0, 2)
    assert engine.store.count_events() == 2


def test_jsonl_and_parquet_formats(engine, tmp_path):
    df = pd.DataFrame({"id": ["x1", "x2"], "title": ["Red Sofa", "Lamp"], "price": [450.0, None]})
    df.to_parquet(tmp_path / "p.parquet")
    rep = engine.ingest_products(tmp_path / "p.parquet")
    assert rep.stored == 2 and engine.product("x2").price is None
    bad = tmp_path / "e.jsonl"
    bad.write_text('{"user_id": "u", "item_id": "x1", "type": "view"}\n'
                   "not json\n\n"
                   '{"user_id": "u", "item_id": "x1", "type": "teleport"}\n'
                   '{"user_id": "u", "item_id": "x1", "type": "view", "timestamp": "soon"}\n')
    rep = engine.ingest_events(bad)
    assert rep.stored == 1
    assert {(r.line, r.field) for r in rep.rejects} == {(2, "(row)"), (4, "type"), (5, "timestamp")}


def test_bad_parameters_are_named(engine, tmp_path):
    with pytest.raises(ValidationError, match="map"):
        parse_mapping(["nonsense"])
    f = tmp_path / "p.csv"
    f.write_text(CSV)
    with pytest.raises(ValidationError, match="names no product field"):
        engine.ingest_products(f, mapping={"sku": "sku_id"})
    with pytest.raises(ValidationError, match="format"):
        engine.ingest_products(tmp_path / "p.csv", format="xlsx")
    with pytest.raises(ValidationError, match="No such file"):
        engine.ingest_products(tmp_path / "missing.csv")


def test_add_events_is_all_or_nothing(engine):
    with pytest.raises(ValidationError, match="item 1, field 'type'"):
        engine.add_events([{"user_id": "u", "item_id": "1", "type": "view"},
                           {"user_id": "u", "item_id": "1", "type": "nope"}])
    assert engine.store.count_events() == 0


def test_delete_user_removes_events(engine):
    engine.add_events([{"user_id": "alice", "item_id": "1", "type": "view"},
                       {"user_id": "bob", "item_id": "1", "type": "view"}])
    assert engine.delete_user("alice")["events"] == 1
    assert engine.store.count_events("alice") == 0 and engine.store.count_events() == 1
