"""On a small real slice of Home Depot (products of the first judged queries and
their judgments): the field-weighted, stemmed BM25 must not lose to plain bm25s,
and spelling correction must fix real typos found in the shoppers' queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopsense.eval import evaluate_retrieval, load_homedepot
from shopsense.search import LexicalIndex, QueryParser, product_fields

# CI clones the repository with ../shared beside it
DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slice_():  # type: ignore[no-untyped-def]
    root = DATASETS
    if not (root / "search" / "homedepot" / "judgments.csv").exists():
        pytest.skip(f"Home Depot data not found under {root} (clone the repo next to ../shared/datasets)")
    return load_homedepot(root, max_products=400)


def test_our_bm25_at_least_plain_bm25s(slice_) -> None:  # type: ignore[no-untyped-def]
    bm25s = pytest.importorskip("bm25s")
    titles = [p.title for p in slice_.products]
    peer = bm25s.BM25()
    peer.index(bm25s.tokenize(titles, show_progress=False), show_progress=False)
    ours = LexicalIndex(k1=1.2, b=0.5).fit(product_fields(slice_.products))

    def top(s: np.ndarray) -> np.ndarray:
        o = np.argsort(-s, kind="stable")[:100]
        return o[s[o] > 0]

    peer_runs = [top(peer.get_scores(bm25s.tokenize([q], show_progress=False, return_ids=False)[0]))
                 for q in slice_.queries]
    our_runs = [top(ours.scores(ours.analyzer.analyze(q))) for q in slice_.queries]
    p = evaluate_retrieval(peer_runs, slice_.gains)
    o = evaluate_retrieval(our_runs, slice_.gains)
    assert o["ndcg@10"] >= p["ndcg@10"]
    assert o["recall@100"] >= p["recall@100"]


def test_real_typos_are_corrected(slice_) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("symspellpy")
    full = load_homedepot(DATASETS)
    parser = QueryParser().fit(full.products)
    # misspellings as Home Depot shoppers typed them in the judgments file
    typed = {q for q in full.queries if q in ("toliet", "cieling fan", "basemetnt window")}
    assert typed, "expected real misspelled queries in judgments.csv"
    assert parser.parse("toliet").text == "toilet"
    assert parser.parse("cieling fan").text == "ceiling fan"
