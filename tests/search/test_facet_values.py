"""Facets a shopper can use (the storefront issue: the ATTRIBUTES facet showed
"[object Object]", counts came from the long tail): per-attribute value counts without
identifiers, price buckets that the price filter reproduces exactly."""

from __future__ import annotations

import numpy as np

from shopsense.catalog import Catalog, Product, match_mask
from shopsense.search import facet_counts


def _catalog() -> Catalog:
    return Catalog([Product(id=f"p{i}", title=f"Cable {i}", price=[4.99, 10.0, 24.99, 25.0, None, 60.0][i % 6],
                            attributes={"ean": f"0000{i}", "cable_colour": ["Red", "Blue"][i % 2], "length_m": "2"})
                    for i in range(12)])


def test_attribute_facets_are_value_counts_without_identifiers() -> None:
    cat = _catalog()
    f = facet_counts(cat, np.arange(len(cat)))
    assert set(f["attributes"]) == {"cable_colour", "length_m"}  # ean identifies, it does not describe
    assert f["attributes"]["cable_colour"] == {"Red": 6, "Blue": 6}
    assert all(isinstance(v, int) for vals in f["attributes"].values() for v in vals.values())


def test_price_buckets_are_what_the_price_filter_returns() -> None:
    cat = _catalog()
    f = facet_counts(cat, np.arange(len(cat)))
    assert f["price"] == {"0-10": 2, "10-25": 4, "25-50": 2, "50-100": 2}
    for label, n in f["price"].items():  # the storefront sends [lo, hi - 0.01]
        lo, hi = (float(x) for x in label.split("-"))
        assert match_mask(cat, {"price_min": lo, "price_max": hi - 0.01}).sum() == n


def _reference(catalog: Catalog, rows: np.ndarray, max_values: int = 20, max_attributes: int = 10) -> dict:
    """Facet counts product by product, as facet_counts did before its codes (30 Nov)."""
    from collections import Counter

    from shopsense.search import IDENTIFIER_ATTRIBUTES

    out: dict = {}
    cats = Counter(c for c in catalog.category_leaf[rows] if c)
    if cats:
        out["category"] = dict(cats.most_common(max_values))
    brands = Counter(b for b in catalog.brand[rows] if b)
    if brands:
        out["brand"] = dict(brands.most_common(max_values))
    attr_counts: dict = {}
    for i in rows if max_attributes > 0 else ():
        for k, v in catalog.products[int(i)].attributes.items():
            if k.strip().casefold() not in IDENTIFIER_ATTRIBUTES and str(v).strip():
                attr_counts.setdefault(k, Counter())[v] += 1
    attr_counts = {k: c for k, c in attr_counts.items()
                   if not (sum(c.values()) >= 5 and len(c) > 0.8 * sum(c.values()))}
    if attr_counts:
        top = sorted(attr_counts, key=lambda k: -sum(attr_counts[k].values()))[:max_attributes]
        out["attributes"] = {k: dict(attr_counts[k].most_common(max_values)) for k in top}
    return out


def test_counts_are_those_of_a_walk_over_the_products_on_real_products() -> None:
    """Vectorised counts (codes, bincount, a sparse matrix of attribute values) give what
    counting product by product gives, order of equal counts included, on real Icecat
    products (categories, brands, dozens of attributes each) and random result sets."""
    import pytest

    from shopsense import datasets as ds

    try:
        products = ds.load_icecat_products(limit=600)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    cat = Catalog(products)
    rng = np.random.default_rng(0)
    pools = [np.arange(len(cat)), np.zeros(0, dtype=np.int64), np.array([3]),
             *[np.sort(rng.choice(len(cat), size=n, replace=False)) for n in (5, 40, 200, 599)],
             rng.permutation(len(cat))[:300]]  # unsorted too: ties follow the walk's order
    for rows in pools:
        for mv, ma in ((20, 10), (3, 2), (20, 0)):
            got = facet_counts(cat, rows, max_values=mv, max_attributes=ma)
            want = _reference(cat, rows, max_values=mv, max_attributes=ma)
            for key in ("category", "brand", "attributes"):
                assert list((got.get(key) or {}).items()) == list((want.get(key) or {}).items()), (key, len(rows))
                if key == "attributes" and key in want:
                    for a in want[key]:
                        assert list(got[key][a].items()) == list(want[key][a].items()), (a, len(rows))
    assert facet_counts(cat, np.arange(len(cat))).get("attributes")  # the data has attributes to count
