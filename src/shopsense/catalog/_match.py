"""The one product matcher: which catalogue rows satisfy a set of conditions.

Search filters, recommendation filters and merchandising rules all ask
:func:`match_mask`, so a product matches the same way everywhere. The rules:

* text (brand, category, attribute names and values) is compared stripped and
  case-folded on both sides: ``"HP" == " hp " == "Hp"``, ``"STRASSE" == "straße"``;
* ids are compared stripped but exactly: they are the shop's keys, and
  ``"SKU-1"`` and ``"sku-1"`` may be two products;
* a list (tuple, set) means "any of"; an empty list matches nothing;
* ``category`` equals any level of the product's category path (root, middle or leaf);
* ``price`` ``{"min": x, "max": y}``, ``price_min`` and ``price_max`` are inclusive,
  and a product without a price never matches a price condition;
* ``rating_min`` is inclusive; an unrated product never matches it;
* ``in_stock: true`` keeps products in stock; ``false`` is no condition;
* ``attributes`` ``{name: value(s)}``, or any other key that names an attribute
  of the catalogue, matches on that attribute;
* a ``None`` value is no condition; all conditions must hold (AND); any other
  key is an error naming the key and the allowed ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from shopsense.errors import ValidationError

__all__ = ["FILTER_KEYS", "fold", "match_mask"]

#: the condition names every caller (search, recommend, rules) understands; any
#: other key must name a product attribute
FILTER_KEYS = ("ids", "category", "brand", "price", "price_min", "price_max", "in_stock", "rating_min",
               "attributes")

_MANY = (list, tuple, set, frozenset)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def fold(value: Any) -> str:
    """The form in which two strings are compared: stripped, then case-folded."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # {"size": 10.0} matches "10"
    return str(value).strip().casefold()


def _items(name: str, value: Any) -> list[Any]:
    items = list(value) if isinstance(value, _MANY) else [value]
    for v in items:
        if isinstance(v, (Mapping, *_MANY)):
            raise ValidationError(
                f"The {name!r} filter must be a string or a list of strings. Got {value!r} instead.",
                field=name)
    return [v for v in items if v is not None]


def _wanted(name: str, value: Any) -> frozenset[str]:
    return frozenset(fold(v) for v in _items(name, value))


def _number(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
        if math.isnan(x):
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(f"The {name!r} filter must be a number. Got {value!r} instead.",
                              field=name) from None
    return x


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and fold(value) in _TRUE | _FALSE:
        return fold(value) in _TRUE
    raise ValidationError(f"The {name!r} filter must be true or false. Got {value!r} instead.", field=name)


def _price_bounds(key: str, value: Any) -> tuple[Any, Any]:
    if key == "price_min":
        return value, None
    if key == "price_max":
        return None, value
    if not isinstance(value, Mapping) or not set(value) <= {"min", "max"}:
        raise ValidationError(
            f"The 'price' filter must be a mapping with 'min' and/or 'max'. Got {value!r} instead.",
            field="price")
    return value.get("min"), value.get("max")


def _attribute_names(products: Iterable[Any]) -> dict[str, str]:
    """Folded attribute name -> its first spelling in the catalogue."""
    names: dict[str, str] = {}
    for p in products:
        for k in p.attributes:
            names.setdefault(fold(k), k)
    return names


def _attr_mask(products: list[Any], rows: np.ndarray, name: str, value: Any) -> np.ndarray:
    key, want = fold(name), _wanted(name, value)
    empty = "" in want  # "" matches a product without this attribute

    def ok(attrs: dict[str, str]) -> bool:
        seen = False
        for k, v in attrs.items():
            if k.strip().casefold() == key:
                if v.strip().casefold() in want:
                    return True
                seen = True
        return empty and not seen

    return np.fromiter((ok(products[i].attributes) for i in rows), bool, len(rows))


def match_mask(catalog: Any, filters: Mapping[str, Any] | None, rows: Any = None) -> np.ndarray:
    """Bool mask of the products that satisfy every condition in ``filters``.

    ``catalog`` is a :class:`~shopsense.catalog.Catalog`; ``rows`` (dense indices,
    all valid) limits the work to those products and the mask is aligned to them,
    otherwise it covers the whole catalogue. No condition: all ``True``. Raises
    :class:`~shopsense.errors.ValidationError` naming the field for a malformed
    value or an unknown key. The rules are in this module's docstring.
    """
    rows = np.arange(len(catalog), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    mask = np.ones(len(rows), dtype=bool)
    products = catalog.products
    attr_names: dict[str, str] | None = None
    for key, value in (filters or {}).items():
        if value is None:
            continue
        if key == "ids":
            want = {str(int(v) if isinstance(v, float) and v.is_integer() else v).strip()
                    for v in _items(key, value)}
            hits = np.array([catalog.index[i] for i in want if i in catalog.index], dtype=np.int64)
            mask &= np.isin(rows, hits)
        elif key == "category":
            want = _wanted(key, value)
            mask &= np.fromiter(
                (any(c.strip().casefold() in want for c in products[i].category) for i in rows),
                bool, len(rows))
        elif key == "brand":
            want = _wanted(key, value)
            mask &= np.fromiter((str(b).strip().casefold() in want for b in catalog.brand[rows]),
                                bool, len(rows))
        elif key in ("price", "price_min", "price_max"):
            lo, hi = _price_bounds(key, value)
            price = catalog.price[rows]
            ok = ~np.isnan(price)  # a price condition never matches an unknown price
            if lo is not None:
                ok &= price >= _number(key, lo)
            if hi is not None:
                ok &= price <= _number(key, hi)
            mask &= ok
        elif key == "in_stock":
            if _flag(key, value):
                mask &= catalog.in_stock[rows]
        elif key == "rating_min":
            r = catalog.rating[rows]
            mask &= ~np.isnan(r) & (r >= _number(key, value))
        elif key == "attributes":
            if not isinstance(value, Mapping):
                raise ValidationError(
                    f"The 'attributes' filter must be a mapping of name to value(s). Got {value!r} instead.",
                    field="attributes")
            for name, v in value.items():
                if v is not None:
                    mask &= _attr_mask(products, rows, str(name), v)
        else:
            if attr_names is None:
                attr_names = _attribute_names(products)
            if fold(key) not in attr_names:
                shown = sorted(attr_names.values(), key=str.casefold)
                more = f" (+{len(shown) - 20} more)" if len(shown) > 20 else ""
                allowed = ", ".join(FILTER_KEYS)
                if shown:
                    allowed += ", or a product attribute: " + ", ".join(shown[:20]) + more
                raise ValidationError(f"Unknown filter {key!r}; allowed: {allowed}.", field=str(key))
            mask &= _attr_mask(products, rows, str(key), value)
    return mask
