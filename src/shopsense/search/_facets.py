"""Facet counts over a result set, and ``filter_mask``: the catalogue's product
matcher (:func:`shopsense.catalog.match_mask`) as search filters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from shopsense.catalog import FILTER_KEYS, match_mask

__all__ = ["FILTER_KEYS", "PRICE_BUCKETS", "facet_counts", "filter_mask"]

#: upper bounds of the price facet buckets
PRICE_BUCKETS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, float("inf"))

#: attributes that identify a product rather than describe it: no shopper filters on them
IDENTIFIER_ATTRIBUTES = frozenset({"ean", "upc", "gtin", "isbn", "sku", "mpn", "model", "asin", "id"})


def filter_mask(catalog: Any, filters: Mapping[str, Any] | None) -> np.ndarray | None:
    """Bool mask of products passing ``filters``; ``None`` when there is no filter.

    Kept for callers of ``shopsense.search.filter_mask``: the matching itself
    (keys, case-folding, lists as "any of", price ranges...) is
    :func:`shopsense.catalog.match_mask`, the one place that knows how a product
    matches.
    """
    if not filters:
        return None
    return match_mask(catalog, filters)


def facet_counts(catalog: Any, rows: np.ndarray, max_values: int = 20, max_attributes: int = 10) -> dict[str, Any]:
    """Counts per category, brand, price bucket, stock, rating and the most common
    attributes over the products at ``rows`` (the whole matching set, not one page)."""
    rows = np.asarray(rows, dtype=np.int64)
    out: dict[str, Any] = {}
    cats = Counter(c for c in catalog.category_leaf[rows] if c)
    if cats:
        out["category"] = dict(cats.most_common(max_values))
    brands = Counter(b for b in catalog.brand[rows] if b)
    if brands:
        out["brand"] = dict(brands.most_common(max_values))
    price = catalog.price[rows]
    known = price[~np.isnan(price)]
    if known.size:
        buckets: dict[str, int] = {}
        lo = 0.0
        for hi in PRICE_BUCKETS:
            c = int(((known >= lo) & (known < hi)).sum())
            if c:
                buckets[f"{lo:g}-{hi:g}" if np.isfinite(hi) else f"{lo:g}+"] = c
            lo = hi
        out["price"] = buckets
    if len(rows):
        out["in_stock"] = {"true": int(catalog.in_stock[rows].sum()), "false": int((~catalog.in_stock[rows]).sum())}
    rating = catalog.rating[rows]
    if (~np.isnan(rating)).any():
        out["rating"] = {f"{t}+": c for t in (4, 3, 2, 1) if (c := int((rating >= t).sum()))}
    attr_counts: dict[str, Counter[str]] = {}
    for i in rows if max_attributes > 0 else ():
        for k, v in catalog.products[int(i)].attributes.items():
            if k.strip().casefold() not in IDENTIFIER_ATTRIBUTES and str(v).strip():
                attr_counts.setdefault(k, Counter())[v] += 1
    # an attribute whose every value is different (a part number) refines nothing
    attr_counts = {k: c for k, c in attr_counts.items()
                   if not (sum(c.values()) >= 5 and len(c) > 0.8 * sum(c.values()))}
    if attr_counts:
        top = sorted(attr_counts, key=lambda k: -sum(attr_counts[k].values()))[:max_attributes]
        out["attributes"] = {k: dict(attr_counts[k].most_common(max_values)) for k in top}
    return out
