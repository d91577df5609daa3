"""BundleService through the Engine on a real Online Retail slice: results, explanations,
budget and stock in every bundle (property-based), privacy and online updates."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopsense.bundles import BundleService
from shopsense.errors import NotFoundError, ValidationError

N_BASKETS = 1000


def _type(title: str) -> str:
    words = [w for w in title.upper().replace(".", "").split() if len(w) > 2]
    return words[-1].title() if words else ""


@pytest.fixture(scope="module")
def shop(online_retail, datasets_root, tmp_path_factory):
    from shopsense import Engine

    d = datasets_root / "baskets" / "online-retail"
    rows = pd.concat([pd.read_csv(d / f, dtype={"StockCode": str}) for f in
                      ("online_retail_first10k_rows.csv", "online_retail_random40k_rows.csv")])
    rows = rows[(rows.UnitPrice > 0) & (rows.Quantity > 0)]
    price = rows.groupby(rows.StockCode.str.strip()).UnitPrice.median().to_dict()
    baskets = online_retail["baskets"][:N_BASKETS]
    ids, titles = online_retail["ids"], online_retail["titles"]
    rng = np.random.default_rng(0)
    eng = Engine(tmp_path_factory.mktemp("bundles") / "home")
    eng.add_products([{"id": c, "title": t, "price": price.get(c), "in_stock": bool(rng.random() > 0.15),
                       "category": [_type(t)] if _type(t) else []} for c, t in zip(ids, titles)])
    events = [{"user_id": f"u{b % 200}", "item_id": ids[j], "type": "purchase", "session_id": f"inv{b}",
               "timestamp": 1_291_000_000 + 60 * b} for b, basket in enumerate(baskets) for j in basket]
    eng.store.add_events(__import__("shopsense").catalog.Event.model_validate(e) for e in events)
    eng._bundles = BundleService(eng, use_text=False)
    eng.bundler.fit()
    yield eng
    eng.close()


def _priced_anchor_ids(eng, n=50):
    cat = eng.catalog()
    counts = eng.bundler.model_.item_counts_
    ok = np.flatnonzero(np.isfinite(cat.price) & (counts >= 5))
    return [cat.ids[i] for i in ok[:n]]


def test_complete_cart_hits_are_explained_and_exclude_the_cart(shop):
    cat = shop.catalog()
    cart = _priced_anchor_ids(shop, 3)
    res = shop.complete_cart(cart, k=10)
    assert len(res) == 10
    assert not set(res.ids) & set(cart)
    assert all(cat.in_stock[cat.index[i]] for i in res.ids)
    for h in res.hits:
        assert h.source in ("copurchase", "complement")
        assert h.evidence["because_item"] in cart
        assert h.reason  # filled by shopsense.rerank.explain
        if h.source == "copurchase":
            assert h.evidence["lift"] > 0 and h.evidence["support"] >= 2
    assert [h.score for h in res.hits] == sorted((h.score for h in res.hits), reverse=True)


def test_complements_are_frequently_bought_together(shop):
    item = _priced_anchor_ids(shop, 1)[0]
    res = shop.complements(item, k=5)
    cp = shop.bundler.model_.copurchase_
    i = shop.catalog().index[item]
    together = [cp.pair_counts_[i, shop.catalog().index[j]] for j in res.ids]
    assert sum(c > 0 for c in together) >= 4


def test_errors(shop):
    with pytest.raises(NotFoundError):
        shop.complements("no-such-sku")
    with pytest.raises(ValidationError, match="'k'"):
        shop.complements(_priced_anchor_ids(shop, 1)[0], k=0)
    with pytest.raises(ValidationError, match="'size'"):
        shop.bundle(_priced_anchor_ids(shop, 1), size=1)
    with pytest.raises(ValidationError, match="'budget'"):
        shop.bundle(_priced_anchor_ids(shop, 1), size=3, budget=-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bundles_respect_budget_stock_and_categories(shop, data):
    cat = shop.catalog()
    pool = _priced_anchor_ids(shop, 60)
    anchors = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
    size = data.draw(st.integers(len(anchors) + 1, len(anchors) + 4))
    budget = data.draw(st.one_of(st.none(), st.floats(0, 80, allow_nan=False)))
    cap = data.draw(st.sampled_from([None, 1, 2]))
    res = shop.bundle(anchors, size=size, budget=budget, max_per_category=cap)
    idx = [cat.index[i] for i in res.ids]
    assert len(idx) == len(set(idx)) <= size - len(anchors)
    assert not set(res.ids) & set(anchors)
    assert cat.in_stock[idx].all()
    if budget is not None:
        fixed = cat.price[[cat.index[a] for a in anchors]].sum()
        if fixed > budget:  # the given items alone are over budget: nothing can be added
            assert len(res) == 0 and "exceed the budget" in res.info["reason"]
            return
        total = fixed + cat.price[idx].sum()
        assert np.isfinite(total) and total <= budget + 1e-6
        if res.info["total_price"] is not None:
            assert res.info["total_price"] == pytest.approx(total, abs=0.01)
    if cap is not None and idx:
        leaf = [cat.category_leaf[i] for i in idx if cat.category_leaf[i]]
        assert not leaf or max(leaf.count(c) for c in set(leaf)) <= cap
    for h in res.hits:
        assert h.source == "bundle" and h.reason
        assert h.evidence["because_item"] in set(anchors) | set(res.ids)


def test_bundle_fills_when_budget_allows_and_is_fast(shop):
    anchors = _priced_anchor_ids(shop, 30)
    took = []
    for a in anchors:
        t = time.perf_counter()
        res = shop.bundle([a], size=3, budget=None)
        took.append(time.perf_counter() - t)
        assert len(res) == 2 and res.info["optimal"]
    # the < 50 ms target is measured in bench/bundles.py on the full data; here a loose guard
    assert np.median(took) < 0.2


def test_forget_user_removes_their_baskets_at_once(shop):
    svc = shop.bundler
    before = svc.model_.copurchase_.n_baskets_
    user = svc.baskets_.user[0]
    n_user = int((svc.baskets_.user == user).sum())
    pairs_before = svc.model_.copurchase_.pair_counts_.sum()
    removed = shop.delete_user(user)
    assert removed["bundles"] == n_user > 0
    assert svc.model_.copurchase_.n_baskets_ == before - n_user
    assert svc.model_.copurchase_.pair_counts_.sum() < pairs_before
    assert user not in set(svc.baskets_.user.tolist())
    # a fresh fit from the store agrees: the events are gone too
    fresh = BundleService(shop, use_text=False).fit()
    assert fresh.model_.copurchase_.n_baskets_ == svc.model_.copurchase_.n_baskets_


def test_a_second_process_maps_the_saved_model_instead_of_fitting(shop, monkeypatch):
    """What a server's second worker does at warm-up: the first fit was saved under a key of
    its inputs, so the same store and settings load it (memory-mapped) with the same answers;
    after a user's deletion no saved model counts their baskets."""
    import mmap

    from shopsense.bundles import ComplementModel

    first = BundleService(shop, use_text=False).fit()
    anchors = _priced_anchor_ids(shop, 5)

    def no_fit(*a, **k):
        raise AssertionError("fitted again although a saved model has the same inputs")

    monkeypatch.setattr(ComplementModel, "fit", no_fit)
    second = BundleService(shop, use_text=False).fit()
    for a in anchors:
        assert second.complete_cart([a], k=5).ids == first.complete_cart([a], k=5).ids
    base = second.model_.pair_scores_.data
    while isinstance(base, np.ndarray):  # views of the map, not a copy read into memory
        base = base.base
    assert isinstance(base, mmap.mmap)
    monkeypatch.undo()

    saved = shop.home / "cache" / "complements"
    user = second.baskets_.user[0]
    shop.delete_user(user)
    left = [p for p in saved.iterdir() if not p.name.startswith(".")]
    assert len(left) == 1
    n = json.loads((left[0] / "manifest.json").read_text())["n_baskets"]
    assert n == shop.bundler.model_.copurchase_.n_baskets_
    # a process that never loaded the model (the CLI's delete-user) removes every saved one
    BundleService(shop, use_text=False).forget_user(second.baskets_.user[1])
    assert not [p for p in saved.iterdir() if not p.name.startswith(".")]


def test_new_purchases_update_the_counts(shop):
    cat = shop.catalog()
    a, b = _priced_anchor_ids(shop, 2)
    i, j = cat.index[a], cat.index[b]
    svc = shop.bundler
    shop.complements(a, k=5)
    before = svc.model_.copurchase_.pair_counts_[i, j]
    svc.refresh_s = 3600.0  # within the refresh interval: new baskets wait, requests stay fast
    shop.add_events([{"user_id": "new", "item_id": x, "type": "purchase", "session_id": f"new{s}",
                      "timestamp": 1_300_000_000 + s} for s in range(3) for x in (a, b)])
    shop.complements(a, k=5)
    assert svc.model_.copurchase_.pair_counts_[i, j] == before
    svc.refresh_s = 0.0  # interval over: the next use refits lazily
    shop.complements(a, k=5)
    assert svc.model_.copurchase_.pair_counts_[i, j] == before + 3


def test_cli_complements_and_bundle(shop):
    from typer.testing import CliRunner

    from shopsense.cli import app

    item = _priced_anchor_ids(shop, 1)[0]
    runner = CliRunner()
    out = runner.invoke(app, ["complements", item, "-k", "3", "--no-text", "--json", "--home", str(shop.home)])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)["hits"]) == 3
    out = runner.invoke(app, ["bundle", item, "--size", "3", "--budget", "30", "--no-text", "--home",
                              str(shop.home)])
    assert out.exit_code == 0, out.output
    assert "total price" in out.output
    out = runner.invoke(app, ["complements", "nope", "--no-text", "--home", str(shop.home)])
    assert out.exit_code == 1 and "Unknown product" in out.output
