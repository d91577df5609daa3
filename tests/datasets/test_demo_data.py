"""The bundled demo files (data/demo): found from anywhere, small, ingest with zero rejects.
These need no ../shared datasets."""

from __future__ import annotations

import json

import pytest

import shopsense.datasets as ds


def test_demo_paths_ingest_cleanly(engine):
    paths = ds.demo_paths()
    assert [p.name for p in paths["products"]] == ["office_products.jsonl", "icecat_products.jsonl"]
    assert [p.name for p in paths["events"]] == ["office_events.parquet"]
    assert sum(p.stat().st_size for p in ds.demo_dir().iterdir()) < 3_000_000
    office, icecat = paths["products"]
    first = json.loads(icecat.open().readline())
    assert first["price"] > 0 and first["in_stock"] is True and first["attributes"]
    assert "price" not in json.loads(office.open().readline())  # Office has no prices: none invented
    assert engine.ingest_products(office).rejected == 0
    r = engine.ingest_products(icecat)
    assert (r.read, r.stored, r.rejected) == (2000, 2000, 0)
    e = engine.ingest_events(paths["events"][0])
    assert (e.read, e.stored, e.rejected) == (53258, 53258, 0)
    cat = engine.catalog()
    assert len(cat.ids) == 4420
    ev = engine.store.events(user_id="office-u0")
    assert ev.item_id.tolist() == ["office-0", "office-1", "office-2", "office-3", "office-4"]


def test_demo_paths_error_names_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPSENSE_DEMO_DATA", str(tmp_path / "nodemo"))
    with pytest.raises(ds.DatasetNotFoundError, match="nodemo"):
        ds.demo_paths()


def test_demo_files_found_from_any_working_directory(tmp_path):
    """The installed (editable) package finds data/demo without the checkout as cwd."""
    import os
    import subprocess
    import sys

    code = "from shopsense.datasets import demo_paths; print(demo_paths()['events'][0])"
    env = {k: v for k, v in os.environ.items() if k != "SHOPSENSE_DEMO_DATA"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip().endswith("data/demo/office_events.parquet")
