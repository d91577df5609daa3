"""Ingestion of real data slices (issue 2): every format, the rejects report, idempotent
re-ingest, and a kill -9 in the middle of an ingest. Skipped when ../shared is absent."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shopsense import Engine


@pytest.fixture(scope="module")
def real(datasets_root):
    import shopsense.datasets as ds

    return {
        "icecat": ds.load_icecat_products(limit=400),
        "retail_products": ds.load_online_retail_products(),
        "retail_events": ds.load_online_retail_events()[:3000],
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_real_slices_ingest_in_every_format(fmt, real, engine, tmp_path):
    from shopsense.datasets import export_events, export_products

    products = real["icecat"] + real["retail_products"][:600]
    events = real["retail_events"]
    export_products(products, tmp_path / f"products.{fmt}")
    export_events(events, tmp_path / f"events.{fmt}")
    rp = engine.ingest_products(tmp_path / f"products.{fmt}")
    assert (rp.read, rp.stored, rp.rejected) == (1000, 1000, 0), rp.rejects[:3]
    re_ = engine.ingest_events(tmp_path / f"events.{fmt}")
    assert re_.read == len(events) and re_.rejected == 0
    # Online Retail has repeated identical rows (same invoice, code, quantity, time): stored once
    distinct = len({(e.user_id, e.item_id, e.timestamp, e.session_id, e.quantity) for e in events})
    assert re_.stored == distinct == engine.store.count_events()
    assert re_.stored + re_.duplicates == re_.read
    p = engine.product(real["icecat"][0].id)
    assert p.price == real["icecat"][0].price and p.attributes == real["icecat"][0].attributes
    ev = engine.store.events(session_id=events[0].session_id)
    assert ev.timestamp[0] == events[0].timestamp.timestamp()


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_rejects_report_names_line_and_field(real, engine, tmp_path):
    good = real["icecat"][:20]
    rows = [[p.id, p.title, p.brand, p.price] for p in good]
    bad = {
        22: ["", "No id here", "HP", 10.0],                       # missing id
        23: ["x-neg", good[0].title, "HP", -5],                   # negative price
        24: ["x-type", good[1].title, "HP", "twelve euros"],      # wrong type
        25: [good[2].id, "Same id again", "HP", 1.0],             # duplicate id
    }
    rows += list(bad.values())
    _write_csv(tmp_path / "broken_products.csv", ["sku", "name", "maker", "cost"], rows)
    rej = tmp_path / "rejects_products.jsonl"
    rep = engine.ingest_products(tmp_path / "broken_products.csv", rejects_path=rej,
                                 mapping={"sku": "id", "name": "title", "maker": "brand", "cost": "price"})
    assert (rep.read, rep.stored, rep.rejected) == (24, 20, 4)
    got = {(r.line, r.field) for r in rep.rejects}
    assert got == {(22, "id"), (23, "price"), (24, "price"), (25, "id")}
    lines = [json.loads(x) for x in rej.read_text().splitlines()]
    assert {(x["line"], x["field"]) for x in lines} == got
    assert "first seen at line 4" in next(x["reason"] for x in lines if x["line"] == 25)

    evs = real["retail_events"][:10]
    erows = [[e.user_id, e.item_id, "purchase", e.timestamp.isoformat(), e.quantity] for e in evs]
    erows += [
        [evs[0].user_id, evs[0].item_id, "purchase", "31/13/2011 25:00", 1],   # line 12: bad timestamp
        [evs[0].user_id, evs[0].item_id, "wishlist", evs[0].timestamp.isoformat(), 1],  # 13: type
        [evs[0].user_id, evs[0].item_id, "purchase", evs[0].timestamp.isoformat(), "two"],  # 14: qty
        ["", evs[0].item_id, "purchase", evs[0].timestamp.isoformat(), 1],    # 15: missing user
    ]
    _write_csv(tmp_path / "broken_events.csv", ["user_id", "item_id", "type", "timestamp", "quantity"], erows)
    rep = engine.ingest_events(tmp_path / "broken_events.csv", rejects_path=tmp_path / "rej_e.jsonl")
    assert rep.rejected == 4 and rep.read == 14
    assert {(r.line, r.field) for r in rep.rejects} == {
        (12, "timestamp"), (13, "type"), (14, "quantity"), (15, "user_id")}


def test_reingest_is_idempotent_on_real_data(real, engine, tmp_path):
    from shopsense.datasets import export_events, export_products

    export_products(real["retail_products"], tmp_path / "p.jsonl")
    export_events(real["retail_events"], tmp_path / "e.csv")
    first = (engine.ingest_products(tmp_path / "p.jsonl").stored, engine.ingest_events(tmp_path / "e.csv").stored)
    counts = (engine.store.count_products(), engine.store.count_events())
    second_p = engine.ingest_products(tmp_path / "p.jsonl")
    second_e = engine.ingest_events(tmp_path / "e.csv")
    assert (engine.store.count_products(), engine.store.count_events()) == counts
    assert counts == first
    assert second_e.stored == 0 and second_e.duplicates == second_e.read
    assert second_p.rejected == 0 and second_p.read == counts[0]


_CHILD = """
import sys
from shopsense import Engine
eng = Engine(sys.argv[1], ingest_batch_size=int(sys.argv[3]))
eng.ingest_products(sys.argv[2])
"""


def test_kill_9_mid_ingest_leaves_store_consistent(datasets_root, tmp_path):
    """Kill the ingesting process between batches; the store must hold whole batches only."""
    src = datasets_root / "search" / "homedepot" / "products.csv"
    mapping_src = tmp_path / "hd.csv"
    # the shop's own column names, mapped by a header rewrite (the CLI would use --map)
    text = src.read_text(encoding="utf-8").split("\n", 1)
    mapping_src.write_text("id,title\n" + text[1], encoding="utf-8")
    total = sum(1 for _ in mapping_src.open(encoding="utf-8")) - 1
    home, batch = tmp_path / "home", 250
    Engine(home).close()  # create the store first so the poller can open it
    db = home / "store.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(mapping_src), str(batch)])
    seen = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            con = sqlite3.connect(db, timeout=5)
            try:
                seen = con.execute("SELECT COUNT(*) FROM products").fetchone()[0]
            except sqlite3.OperationalError:
                seen = 0
            finally:
                con.close()
            if seen >= 10 * batch:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the ingest finished before it could be killed"
        proc.kill()  # SIGKILL: no cleanup, no rollback handler runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -9

    with Engine(home) as eng:
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        n = eng.store.count_products()
        assert 0 < n < total and n % batch == 0, f"{n} rows is not a whole number of {batch}-row batches"
        assert len(eng.store.product_ids()) == n
        rep = eng.ingest_products(mapping_src)
        assert (rep.read, rep.rejected) == (total, 0)
        assert eng.store.count_products() == total == 54667
