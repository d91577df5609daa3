"""Small real slices of the basket datasets, and text vectors without a neural encoder.

The complement model takes item vectors as arrays; the default tests use
TF-IDF + SVD vectors of the real item texts (fast, deterministic) so they need
no torch. One slow test runs the sentence encoder through the engine.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from shopsense.datasets import read_basket_file

OR_SLICE = 2000  # the first invoices of Online Retail (Dec 2010)


def tfidf_vectors(texts: list[str], dim: int = 64) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    m = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=1).fit_transform(texts)
    v = TruncatedSVD(n_components=min(dim, m.shape[1] - 1), random_state=0).fit_transform(m)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@pytest.fixture(scope="session")
def online_retail(datasets_root: Path) -> dict:
    d = datasets_root / "baskets" / "online-retail"
    baskets, codes = read_basket_file(str(d / "online_retail_invoice_baskets_stockcodes.csv"))
    baskets = baskets[:OR_SLICE]
    used = np.unique(np.concatenate(baskets))
    remap = -np.ones(len(codes), dtype=np.int64)
    remap[used] = np.arange(len(used))
    baskets = [remap[b] for b in baskets]
    codes = [codes[i] for i in used]
    with (d / "DERIVED_stockcode_description_lookup.csv").open(encoding="utf-8") as fh:
        desc = {r["StockCode"].strip(): r["Description"].strip() for r in csv.DictReader(fh)}
    titles = [desc.get(c, "") or f"item {c}" for c in codes]
    return {"baskets": baskets, "ids": codes, "titles": titles, "n": len(codes)}


@pytest.fixture(scope="session")
def groceries(datasets_root: Path, tmp_path_factory) -> dict:
    d = datasets_root / "baskets" / "groceries"
    fixed = tmp_path_factory.mktemp("groceries") / "groceries.csv"
    fixed.write_text((d / "groceries.csv").read_text().replace("long life, bakery product",
                                                               "long life bakery product"))
    baskets, labels = read_basket_file(str(fixed))
    with (d / "DERIVED_groceries_itemInfo_from_rda.csv").open(encoding="utf-8") as fh:
        info = {r["labels"].strip(): (r["level2"], r["level1"]) for r in csv.DictReader(fh)}
    lvl2 = [info[x][0] for x in labels]
    names = sorted(set(lvl2))
    return {"baskets": baskets, "ids": labels, "level2": lvl2, "level1": [info[x][1] for x in labels],
            "categories": np.array([names.index(c) for c in lvl2]), "n": len(labels)}


@pytest.fixture(scope="session")
def or_vectors(online_retail) -> np.ndarray:
    return tfidf_vectors([t.lower() for t in online_retail["titles"]])
