"""The Open Icecat electronics catalogue (19,406 products, as shipped by the Chorus demo)."""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from datetime import datetime
from typing import Any

from shopsense.catalog import Product
from shopsense.datasets._paths import dataset_file

__all__ = ["icecat_raw", "load_icecat_products"]

# Logistics and compliance fields: real but useless for shoppers' facets and search.
_SKIP_ATTR = re.compile(
    r"package|pallet|master__outer|quantity_per|country_of_origin|certification|temperature|"
    r"humidity|rohs|status|oem_code|harmonized|_code$|weight|^attr_n_width$|^attr_n_height$|"
    r"^attr_n_depth$|dimensions|last_change"
)
_PREFIX = re.compile(r"^attr_[tnb]_")
_WORD = re.compile(r"[a-z][a-z\-/]*$")


def icecat_raw(limit: int | None = None) -> list[dict[str, Any]]:
    """The raw records of the four zipped JSON files, in file order."""
    out: list[dict[str, Any]] = []
    for part in (1, 2, 3, 4):
        with zipfile.ZipFile(dataset_file("catalog", "icecat", f"{part}.json.zip")) as zf:
            out.extend(json.loads(zf.read(zf.namelist()[0])))
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def _attr_name(key: str) -> str:
    return _PREFIX.sub("", key).replace("__", "_").strip("_")


def _attr_value(v: Any) -> str | None:
    if v is None or v == "" or v == []:
        return None
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    text = str(v).strip()
    # Long values are prose (bundled software lists), not facet values.
    return text if 0 < len(text) <= 120 else None


def _remainder(rec: dict[str, Any]) -> str:
    """The title without its leading brand and model name: Icecat titles read
    ``<brand> <model> <category> <key specs>``."""
    rest = rec.get("title") or ""
    for part in (rec.get("supplier") or "", rec.get("name") or ""):
        if part and rest.lower().startswith(part.lower()):
            rest = rest[len(part):].strip()
    return rest


def _lower_prefix(text: str, max_words: int = 4) -> str:
    """The leading run of lower-case words: Icecat writes category names in lower case
    right after the model ("toner cartridge Original Black" -> "toner cartridge")."""
    words = []
    for w in text.split()[:max_words]:
        if not _WORD.match(w):
            break
        words.append(w)
    return " ".join(words)


def _category_vocabulary(records: list[dict[str, Any]], min_count: int) -> list[str]:
    counts = Counter(p for p in (_lower_prefix(_remainder(r)) for r in records) if p)
    # longest first, so "toner cartridge" wins over "cartridge"
    return sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-len(c), c))


def _derive_category(rec: dict[str, Any], vocab: list[str], vocab_set: set[str]) -> str | None:
    prefix = _lower_prefix(_remainder(rec))
    if prefix in vocab_set:
        return prefix
    title = " " + (rec.get("title") or "").lower() + " "
    for c in vocab:
        if f" {c} " in title:
            return c
    return None


def load_icecat_products(
    limit: int | None = None, max_attributes: int = 16, min_attribute_count: int = 50,
    min_category_count: int = 5,
) -> list[Product]:
    """Icecat products in the engine schema.

    - ``title``, ``description`` = short_description, ``brand`` = supplier.
    - ``price``: the file stores integer cents (``4995`` = 49.95); converted to units.
      Currency is not stated by the source; USD (the Chorus demo shows dollars).
    - ``image_url`` = img_500x500 (hosts are unreachable offline; surfaces must cope).
    - ``created_at`` = date_released.
    - ``category``: one level, derived from the title when possible (Icecat titles put
      the lower-case category name after the model, e.g. "toner cartridge"; names seen
      on at least ``min_category_count`` products form the vocabulary); empty otherwise.
    - ``attributes``: the ``attr_*`` fields present on at least ``min_attribute_count``
      products (logistics and compliance fields dropped), the ``max_attributes`` most
      common per product, as strings (booleans as yes/no); plus ``model`` and ``ean``.

    Example
    -------
    >>> products = load_icecat_products(limit=100)    # doctest: +SKIP
    >>> products[0].brand, products[0].price           # doctest: +SKIP
    ('Xerox', 49.95)
    """
    # Coverage and vocabulary come from the full file even when a limit is given, so a
    # slice keeps the same attribute and category choices as the whole catalogue.
    basis = icecat_raw()
    records = basis if limit is None else basis[:limit]
    coverage = Counter(k for r in basis for k, v in r.items()
                       if k.startswith("attr_") and _attr_value(v) is not None)
    useful = [k for k, n in coverage.most_common() if n >= min_attribute_count and not _SKIP_ATTR.search(k)]
    vocab = _category_vocabulary(basis, min_category_count)
    vocab_set = set(vocab)
    out = []
    for r in records:
        attrs: dict[str, str] = {}
        if r.get("name"):
            attrs["model"] = str(r["name"])
        if r.get("ean"):
            attrs["ean"] = str(r["ean"][0])
        for k in useful:
            if len(attrs) >= max_attributes + 2:
                break
            v = _attr_value(r.get(k))
            if v is not None:
                attrs[_attr_name(k)] = v
        cat = _derive_category(r, vocab, vocab_set)
        price = r.get("price")
        released = r.get("date_released")
        out.append(Product(
            id=str(r["id"]), title=r["title"], description=r.get("short_description") or "",
            brand=r.get("supplier") or "", category=[cat] if cat else [], attributes=attrs,
            price=price / 100.0 if isinstance(price, (int, float)) else None,
            image_url=r.get("img_500x500") or r.get("img_high") or None,
            **({"created_at": datetime.fromisoformat(released)} if released else {}),
        ))
    return out
