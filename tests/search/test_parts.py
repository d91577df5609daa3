"""Analyzer, lexical index, dense index, fusion, filters and facets (no encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from shopsense.catalog import Catalog
from shopsense.errors import ValidationError
from shopsense.search import (
    Analyzer,
    DenseIndex,
    LexicalIndex,
    facet_counts,
    filter_mask,
    normalise,
    product_fields,
    rrf,
    weighted_fusion,
)


def test_analyzer_normalises_units_and_compounds() -> None:
    a = Analyzer()
    assert a.words('Samsung 55" LED TV') == a.words("samsung 55 inch led tv")
    assert a.words("1-gal. paint") == ["1", "gallon", "paint"]
    assert a.words("2x4 lumber 8 ft.") == ["2", "x", "4", "lumber", "8", "foot"]
    assert "strongtie" in a.words("Simpson Strong-Tie")
    assert {"deck", "over", "deckov"} <= set(a.analyze("BEHR DeckOver"))
    assert a.analyze("cordless drills") == ["cordless", "drill"]


def test_lexical_round_trip_and_field_weights(products, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lx = LexicalIndex().fit(product_fields(products))
    q = lx.analyzer.analyze("samsung tv")
    s = lx.scores(q)
    assert s.shape == (len(products),) and s.max() > 0
    lx.save(tmp_path / "lex")
    back = LexicalIndex.load(tmp_path / "lex")
    np.testing.assert_allclose(back.scores(q), s, rtol=1e-6)
    # brand weight matters: without the brand field an LG TV scores the same on "samsung"
    s_no_brand = lx.scores(lx.analyzer.analyze("samsung"), weights={**lx.field_weights, "brand": 0.0})
    assert (lx.scores(lx.analyzer.analyze("samsung")) >= s_no_brand).all()


def test_dense_hnsw_agrees_with_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("hnswlib")
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx = DenseIndex(exact_below=1000).fit(v)
    assert idx.hnsw_ is not None
    recall = []
    for q in v[:50] + 0.1 * rng.normal(size=(50, 32)).astype(np.float32):
        q = q / np.linalg.norm(q)
        a, _ = idx.search(q, 10)
        e, _ = idx.exact_search(q, 10)
        recall.append(len(set(a) & set(e)) / 10)
    assert np.mean(recall) >= 0.95
    idx.save(tmp_path / "d")
    back = DenseIndex.load(tmp_path / "d")
    np.testing.assert_array_equal(back.search(v[0], 10)[0], idx.search(v[0], 10)[0])
    allowed = np.zeros(6000, dtype=bool)
    allowed[::7] = True
    rows, _ = idx.search(v[3], 10, allowed=allowed)
    assert allowed[rows].all() and len(rows) == 10


def test_fusion_is_pure() -> None:
    a, b = [3, 1, 2], [1, 4]
    fused = rrf([a, b], k=60)
    assert max(fused, key=fused.get) == 1  # in both lists
    assert a == [3, 1, 2] and b == [1, 4]
    s = np.array([2.0, 1.0, 0.0])
    out = weighted_fusion({"bm25": s, "dense": np.array([0.1, 0.5, 0.9])}, {"bm25": 1.0, "dense": 0.5},
                          {"dense": "minmax"})
    np.testing.assert_allclose(out, [1.0, 0.75, 0.5])
    np.testing.assert_array_equal(s, [2.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="'method'"):
        normalise(s, "bogus")


def test_filters_and_facets(products) -> None:  # type: ignore[no-untyped-def]
    cat = Catalog(list(products))
    m = filter_mask(cat, {"brand": "samsung", "price": {"max": 300}})
    rows = np.flatnonzero(m)
    assert len(rows) > 0
    assert all(products[i].brand == "Samsung" and products[i].price <= 300 for i in rows)
    m2 = filter_mask(cat, {"category": "Sofas", "attributes": {"material": "leather"}})
    assert all("Leather" in products[i].title for i in np.flatnonzero(m2))
    assert filter_mask(cat, {"color": "Black"}).sum() == sum(p.attributes.get("color") == "Black" for p in products)
    with pytest.raises(ValidationError, match="Unknown filter 'colour_typo'"):
        filter_mask(cat, {"colour_typo": "red"})
    with pytest.raises(ValidationError, match="'price'"):
        filter_mask(cat, {"price": 5})
    all_rows = np.arange(len(products))
    f = facet_counts(cat, all_rows)
    assert sum(f["category"].values()) == len(products)
    assert f["brand"]["Samsung"] == sum(p.brand == "Samsung" for p in products)
    assert sum(f["price"].values()) == len(products)
    assert f["attributes"]["color"]["Black"] == sum(p.attributes.get("color") == "Black" for p in products)


def test_bm25s_logger_follows_the_application() -> None:
    """bm25s sets its logger to DEBUG on import; ours hands it back to the app's level."""
    import logging

    from shopsense.search import import_bm25s

    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # as a fresh `import bm25s` leaves it
    import_bm25s()
    assert logging.getLogger("bm25s").level == logging.NOTSET
