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
