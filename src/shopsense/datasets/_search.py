"""Search-relevance datasets: Home Depot and Crowdflower (Kaggle)."""

from __future__ import annotations

import csv
import hashlib
import html
import re
from pathlib import Path

import numpy as np

from shopsense.catalog import Product
from shopsense.datasets._judgments import Judgments, load_judgments
from shopsense.datasets._paths import dataset_file

__all__ = [
    "load_crowdflower_judgments", "load_crowdflower_products", "load_homedepot_judgments",
    "load_homedepot_products",
]

#: Home Depot's judgment columns -> the judgment fields
_HOMEDEPOT_COLUMNS = {"search_term": "query", "product_uid": "product_id", "relevance": "relevance"}

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def load_homedepot_products(limit: int | None = None, root: str | Path | None = None) -> list[Product]:
    """Home Depot products (54,667): ``id`` = product_uid, ``title`` = product_title.

    The public file has titles only (no descriptions, brands or prices). ``root``: the
    datasets folder (default :func:`~shopsense.datasets.datasets_root`).
    """
    path = dataset_file("search", "homedepot", "products.csv", root=root)
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if limit is not None and len(out) >= limit:
                break
            out.append(Product(id=row["product_uid"], title=row["product_title"]))
    return out


def load_homedepot_judgments(limit: int | None = None, root: str | Path | None = None) -> Judgments:
    """Home Depot (query, product_uid, relevance) pairs; relevance is a rater mean in [1, 3].

    Read by the one judgments reader (:func:`~shopsense.datasets.load_judgments`): a
    malformed row raises an error naming its line and column."""
    path = dataset_file("search", "homedepot", "judgments.csv", root=root)
    return load_judgments(path, _HOMEDEPOT_COLUMNS, limit=limit, scale=(1.0, 3.0))


def _clean_html(text: str) -> str:
    # The descriptions are small HTML fragments; a regex strip is enough for search text
    # and avoids an HTML-parser dependency.
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def crowdflower_id(title: str, description: str) -> str:
    """Stable product id for Crowdflower: the file has none, and one product appears
    under several queries, so the id is a hash of its (cleaned) title and description
    (the ids the search benchmark's engine homes were built with)."""
    digest = hashlib.blake2b(f"{title}\x00{description}".encode(), digest_size=6).hexdigest()
    return f"cf-{digest}"


def _crowdflower_rows(limit: int | None, root: str | Path | None = None):  # type: ignore[no-untyped-def]
    path = dataset_file("search", "crowdflower", "train.csv", root=root)
    csv.field_size_limit(1 << 24)
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if limit is not None and i >= limit:
                return
            title = _clean_html(row["product_title"])
            desc = _clean_html(row["product_description"])
            yield row, title, desc, crowdflower_id(title, desc)


def load_crowdflower_products(limit: int | None = None, root: str | Path | None = None) -> list[Product]:
    """Distinct Crowdflower products (title + HTML-stripped description) with stable ids,
    in order of first appearance.

    ``limit`` bounds the rows of ``train.csv`` read, not the products returned.
    """
    out: dict[str, Product] = {}
    for _, title, desc, pid in _crowdflower_rows(limit, root):
        if pid not in out:
            # A handful of rows have an empty title: the description's start stands in.
            out[pid] = Product(id=pid, title=title or desc[:120] or pid, description=desc)
    return list(out.values())


def load_crowdflower_judgments(limit: int | None = None, root: str | Path | None = None) -> Judgments:
    """Crowdflower (query, product id, median relevance in [1, 4]) rows; ids match
    :func:`load_crowdflower_products`."""
    q, p, r = [], [], []
    for row, _, _, pid in _crowdflower_rows(limit, root):
        q.append(row["query"].strip())
        p.append(pid)
        r.append(float(row["median_relevance"]))
    path = dataset_file("search", "crowdflower", "train.csv", root=root)
    return Judgments(np.array(q, dtype=object), np.array(p, dtype=object), np.array(r, dtype=np.float64),
                     scale=(1.0, 4.0), report={"file": str(path), "rows": len(q)})
