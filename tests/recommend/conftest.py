"""A small real slice of Amazon Office (users with item text) for recommendation tests."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATASETS

OFFICE = DATASETS / "rec" / "amazon-office"


@pytest.fixture(scope="session")
def office() -> tuple[list[np.ndarray], list[dict]]:
    if not (OFFICE / "Office.inter.json").exists():
        pytest.skip(f"Amazon Office not found at {OFFICE} (../shared/datasets beside the repo)")
    from shopsense.eval import read_office

    return read_office(OFFICE)


@pytest.fixture(scope="session")
def office_slice(office):  # type: ignore[no-untyped-def]
    """1,500 users; item indices kept global (2,420 items, all with text)."""
    seqs, records = office
    return seqs[:1500], records


@pytest.fixture(scope="session")
def tfidf_vectors(office):  # type: ignore[no-untyped-def]
    """Cheap text vectors for model-level tests (the service test uses the real encoder)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from shopsense.eval import office_text

    _, records = office
    x = TfidfVectorizer(min_df=2, sublinear_tf=True).fit_transform([office_text(r) for r in records])
    return TruncatedSVD(64, random_state=0).fit_transform(x).astype(np.float32)


def products_and_events(seqs: list[np.ndarray], records: list[dict], n_users: int) -> tuple[list[dict], list[dict]]:
    """Products for every item the users touched and their events (views, then a purchase
    every third step), one day apart, in sequence order."""
    used = sorted({int(i) for s in seqs[:n_users] for i in s})
    products = []
    for i in used:
        r = records[i]
        products.append({"id": f"o{i}", "title": r.get("title") or f"item {i}", "description": r.get("description") or "",
                         "brand": r.get("brand") or "", "category": [c.strip() for c in (r.get("categories") or "").split(",") if c.strip()],
                         "price": float(5 + (i * 7) % 95), "in_stock": i % 9 != 0})
    events = []
    t0 = 1_600_000_000
    for u, s in enumerate(seqs[:n_users]):
        for step, i in enumerate(s):
            events.append({"user_id": f"u{u}", "item_id": f"o{int(i)}", "type": "purchase" if step % 3 == 2 else "view",
                           "timestamp": t0 + step * 86400 + u})
    return products, events


