"""The loaders on the real files in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import numpy as np
import pytest

import shopsense.datasets as ds
from shopsense.catalog import Event, Product


@pytest.fixture(autouse=True)
def _need_datasets(datasets_root):  # skips every test here with a clear reason when absent
    return datasets_root


def test_root_resolves_beside_repo_and_errors_name_the_path(monkeypatch, tmp_path):
    assert (ds.datasets_root() / "README.md").exists()
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("SHOPSENSE_DATASETS", str(missing))
    with pytest.raises(ds.DatasetNotFoundError, match=str(missing)):
        ds.datasets_root()
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for callers
        ds.load_homedepot_products(limit=1)


def test_homedepot():
    products = ds.load_homedepot_products(limit=200)
    assert len(products) == 200 and all(isinstance(p, Product) for p in products)
    assert products[0].id == "100001" and products[0].title == "Simpson Strong-Tie 12-Gauge Angle"
    j = ds.load_homedepot_judgments()
    assert len(j) == 51845 and len(j.queries()) == 8219
    assert j.relevance.dtype == np.float64 and 1.0 <= j.relevance.min() and j.relevance.max() <= 3.0
    assert j.by_query()["l bracket"]["100001"] == 2.5


def test_crowdflower_ids_are_stable_and_join():
    products = ds.load_crowdflower_products(limit=500)
    again = ds.load_crowdflower_products(limit=500)
    assert [p.id for p in products] == [p.id for p in again]
    assert len({p.id for p in products}) == len(products) <= 500
    assert all("<" not in p.description or ">" not in p.description for p in products[:50])
    j = ds.load_crowdflower_judgments(limit=500)
    assert set(j.product_id.tolist()) == {p.id for p in products}
    assert set(np.unique(j.relevance).tolist()) <= {1.0, 2.0, 3.0, 4.0}


def test_office_products_and_events():
    products = ds.load_office_products()
    assert len(products) == 2420
    p0 = products[0]
    assert p0.id == "office-0" and p0.brand == "VTech"
    assert p0.category == ["Office Electronics", "Telephones & Accessories", "Cordless Telephones"]
    assert all(p.price is None for p in products)  # the source has no prices: none invented
    assert not any("&amp;" in p.title for p in products)
    seqs = ds.load_office_sequences()
    assert len(seqs) == 4905 and seqs.n_interactions == 53258
    assert seqs[0].tolist() == ["office-0", "office-1", "office-2", "office-3", "office-4"]
    events = ds.load_office_events(limit_users=50)
    assert len(events) == int(seqs.lengths()[:50].sum())
    ts = np.array([e.timestamp.timestamp() for e in events])
    assert np.all(np.diff(ts) > 0)  # derived timestamps are strictly monotone
    assert ts[0] == ds.SEQUENCE_EPOCH
    assert {e.item_id for e in events} <= {p.id for p in products}


@pytest.mark.parametrize("name,users,items", [("beauty", 22363, 12101), ("sports", 35598, 18357)])
def test_amazon_sequences(name, users, items):
    seqs = ds.load_amazon_sequences(name)
    assert len(seqs) == users and len(seqs.item_ids()) == items
    first = next(ds.iter_amazon_events(name, limit_users=3))
    assert isinstance(first, Event) and first.user_id == seqs.keys[0] and first.item_id == seqs[0][0]
    assert sum(1 for _ in ds.iter_amazon_events(name, limit_users=3)) == int(seqs.lengths()[:3].sum())


def test_amazon_sequences_rejects_unknown_name():
    with pytest.raises(ValueError, match="'name' parameter"):
        ds.load_amazon_sequences("toys")  # type: ignore[arg-type]


def test_online_retail():
    products = ds.load_online_retail_products()
    by_id = {p.id: p for p in products}
    assert len(products) > 3300 and not set(by_id) & ds.SERVICE_CODES
    assert by_id["85123A"].title.startswith("WHITE HANGING HEART") and by_id["85123A"].currency == "GBP"
    assert by_id["85123A"].price is not None and by_id["85123A"].price > 0
    events = ds.load_online_retail_events()
    assert 38000 < len(events) < 40000
    assert all(e.quantity >= 1 and e.price and e.price > 0 for e in events)
    assert events[0].timestamp >= datetime(2010, 12, 1, tzinfo=UTC)
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(events))
    assert all(not e.session_id.startswith("C") for e in events)
    baskets = ds.load_online_retail_baskets(limit=3)
    assert baskets[0].tolist() == ["85123A", "71053", "84406B", "84029G", "84029E", "22752", "21730"]
    assert len(ds.load_online_retail_baskets()) == 25900


def test_groceries():
    baskets = ds.load_groceries_baskets()
    assert len(baskets) == 9835 and baskets[0].tolist()[:2] == ["citrus fruit", "semi-finished bread"]
    products = ds.load_groceries_products()
    assert len(products) == 169
    assert {p.id for p in products} >= set(baskets.item_ids())
    sausage = next(p for p in products if p.id == "frankfurter")
    assert sausage.category == ["meat and sausage", "sausage"]


def test_icecat_slice():
    products = ds.load_icecat_products(limit=300)
    assert len(products) == 300
    p = products[0]
    assert p.id == "3920564" and p.brand == "Xerox" and math.isclose(p.price, 49.95)
    assert p.category == ["toner cartridge"] and p.attributes["model"] == "006R90321"
    assert p.created_at == datetime(2009, 12, 10, tzinfo=UTC)
    assert p.image_url and p.image_url.startswith("http")
    assert all(isinstance(v, str) for q in products for v in q.attributes.values())
    assert not any(k.startswith("package") or "pallet" in k for q in products for k in q.attributes)
    assert sum(bool(q.category) for q in products) > 100


def test_export_roundtrip_every_format(tmp_path, engine):
    products = ds.load_icecat_products(limit=50) + ds.load_office_products(limit=50)
    events = ds.load_office_events(limit_users=20)
    for fmt in ("csv", "jsonl", "parquet"):
        assert ds.export_products(products, tmp_path / f"p.{fmt}") == 100
        assert ds.export_events(events, tmp_path / f"e.{fmt}") == len(events)
        rp = engine.ingest_products(tmp_path / f"p.{fmt}")
        re_ = engine.ingest_events(tmp_path / f"e.{fmt}")
        assert (rp.read, rp.rejected) == (100, 0), rp.rejects
        assert (re_.read, re_.rejected) == (len(events), 0), re_.rejects
        for want in products[:3] + products[50:53]:
            got = engine.product(want.id)
            assert got.model_dump(exclude={"created_at"}) == want.model_dump(exclude={"created_at"})
    # identical events in three formats are stored once
    assert engine.store.count_events() == len(events)
    # a category name with a comma or slash survives CSV as one level
    office = next(p for p in products if p.id.startswith("office-"))
    assert engine.product(office.id).category == office.category
