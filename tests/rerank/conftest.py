"""A small real slice: Amazon Office items (titles, brands, leaf categories) and
candidate lists built from real co-purchase counts, so re-ranking sees real
category and brand skew."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shopsense.catalog import Catalog, Product
from shopsense.results import Hit


@pytest.fixture(scope="session")
def office(datasets_root):
    folder = datasets_root / "rec" / "amazon-office"
    if not folder.exists():
        pytest.skip(f"Amazon Office not found at {folder}")
    items = json.loads((folder / "Office.item.json").read_text())
    inter = json.loads((folder / "Office.inter.json").read_text())
    n = max(int(k) for k in items) + 1
    prods = []
    for i in range(n):
        r = items.get(str(i), {})
        cats = [c.strip() for c in str(r.get("categories") or "").split(",") if c.strip()]
        prods.append(Product(id=f"o{i}", title=(r.get("title") or f"item {i}")[:200] or f"item {i}",
                             brand=r.get("brand") or "", category=cats, price=float(5 + (i * 37) % 200),
                             in_stock=(i % 13 != 0)))
    cat = Catalog(prods)
    seqs = [np.asarray(inter[u], np.int64) for u in sorted(inter, key=int)[:1500]]
    # item-item co-occurrence over the first 1,500 users: the candidate scores
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    X = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(seqs))), shape=(len(seqs), n))
    X.data[:] = 1.0
    C = (X.T @ X).toarray()
    np.fill_diagonal(C, 0)
    pop = np.asarray(X.sum(0)).ravel()
    return {"catalog": cat, "seqs": seqs, "cooc": C, "pop": pop}


def candidate_lists(office, n_lists: int = 200, n_cand: int = 60) -> list[list[Hit]]:
    """Per user: items co-purchased with the history, best first (ties by popularity)."""
    C, pop, cat = office["cooc"], office["pop"], office["catalog"]
    out = []
    for s in office["seqs"][:n_lists]:
        sc = C[s].sum(0) + 1e-3 * pop
        sc[s] = -np.inf
        top = np.argsort(-sc)[:n_cand]
        anchor = cat.ids[int(s[-1])]
        out.append([Hit(cat.ids[j], float(sc[j]), "copurchase", evidence={"because_item": anchor})
                    for j in top])
    return out
