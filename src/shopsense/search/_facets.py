"""Filters (category, brand, price range, stock, rating, any attribute) as boolean
masks over the catalogue, and facet counts over a result set."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from shopsense.errors import ValidationError

__all__ = ["FILTER_KEYS", "PRICE_BUCKETS", "facet_counts", "filter_mask"]

FILTER_KEYS = ("category", "brand", "price", "price_min", "price_max", "in_stock", "rating_min", "attributes")
#: upper bounds of the price facet buckets
PRICE_BUCKETS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, float("inf"))


def _as_set(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value.lower()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return {str(v).lower() for v in value}
    return {str(value).lower()}


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The {name!r} filter must be a number. Got {value!r} instead.", field=name) from None


def filter_mask(catalog: Any, filters: Mapping[str, Any] | None) -> np.ndarray | None:
    """Bool mask of products passing ``filters``; ``None`` when there is no filter.

    Keys: ``category`` (matches any level of the path), ``brand``, ``price`` as
    ``{"min": x, "max": y}`` or ``price_min``/``price_max``, ``in_stock``,
    ``rating_min``, ``attributes`` as ``{name: value or [values]}``; any other key
    that is an attribute name of the catalogue filters on that attribute. String
    matches ignore case; a list means "any of".
    """
    if not filters:
        return None
    n = len(catalog)
    mask = np.ones(n, dtype=bool)
    products = catalog.products
    attr_names: set[str] | None = None
    for key, value in filters.items():
        if value is None:
            continue
        if key == "category":
            want = _as_set(value)
            mask &= np.array([any(c.lower() in want for c in p.category) for p in products], dtype=bool)
        elif key == "brand":
            want = _as_set(value)
            mask &= np.array([b.lower() in want for b in catalog.brand], dtype=bool)
        elif key in ("price", "price_min", "price_max"):
            if key == "price":
                if not isinstance(value, Mapping):
                    raise ValidationError(f"The 'price' filter must be a mapping with 'min' and/or 'max'. Got {value!r} instead.",
                                          field="price")
                lo, hi = value.get("min"), value.get("max")
            else:
                lo, hi = (value, None) if key == "price_min" else (None, value)
            price = catalog.price
            ok = ~np.isnan(price)  # an explicit price filter excludes products without a price
            if lo is not None:
                ok &= price >= _number(key, lo)
            if hi is not None:
                ok &= price <= _number(key, hi)
            mask &= ok
        elif key == "in_stock":
            if bool(value):
                mask &= catalog.in_stock
        elif key == "rating_min":
            r = catalog.rating
            mask &= ~np.isnan(r) & (r >= _number(key, value))
        elif key == "attributes":
            if not isinstance(value, Mapping):
                raise ValidationError(f"The 'attributes' filter must be a mapping of name to value(s). Got {value!r} instead.",
                                      field="attributes")
            for name, v in value.items():
                mask &= _attr_mask(products, str(name), v)
        else:
            if attr_names is None:
                attr_names = {k for p in products for k in p.attributes}
            if key not in attr_names:
                allowed = ", ".join(list(FILTER_KEYS) + sorted(attr_names)[:20])
                raise ValidationError(f"Unknown filter {key!r}; allowed: {allowed}.", field=key)
            mask &= _attr_mask(products, key, value)
    return mask


def _attr_mask(products: list[Any], name: str, value: Any) -> np.ndarray:
    want = _as_set(value)
    return np.array([p.attributes.get(name, "").lower() in want for p in products], dtype=bool)


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
    out["in_stock"] = {"true": int(catalog.in_stock[rows].sum()), "false": int((~catalog.in_stock[rows]).sum())}
    rating = catalog.rating[rows]
    if (~np.isnan(rating)).any():
        out["rating"] = {f"{t}+": int((rating >= t).sum()) for t in (4, 3, 2, 1)}
    attr_counts: dict[str, Counter[str]] = {}
    for i in rows if max_attributes > 0 else ():
        for k, v in catalog.products[int(i)].attributes.items():
            attr_counts.setdefault(k, Counter())[v] += 1
    if attr_counts:
        top = sorted(attr_counts, key=lambda k: -sum(attr_counts[k].values()))[:max_attributes]
        out["attributes"] = {k: dict(attr_counts[k].most_common(max_values)) for k in top}
    return out
