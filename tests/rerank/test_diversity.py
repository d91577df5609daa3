from __future__ import annotations

import numpy as np
import pytest

from shopsense.errors import ValidationError
from shopsense.rerank import (
    category_cap,
    dpp_rerank,
    item_features,
    maxsum_rerank,
    mmr_rerank,
    similarity_matrix,
)

from .conftest import candidate_lists


def _ild(order: np.ndarray, S: np.ndarray, k: int = 10) -> float:
    t = order[:k]
    s = S[np.ix_(t, t)]
    return float((1 - s)[~np.eye(len(t), dtype=bool)].mean())


@pytest.fixture()
def clusters():
    """30 items in 3 tight clusters; relevance favours cluster 0 entirely."""
    rng = np.random.default_rng(1)
    centers = np.eye(3, 16)
    emb = np.vstack([centers[c] + 0.05 * rng.normal(size=16) for c in (0,) * 10 + (1,) * 10 + (2,) * 10])
    rel = np.concatenate([np.linspace(1, 0.8, 10), np.linspace(0.7, 0.5, 10), np.linspace(0.45, 0.3, 10)])
    return rel, item_features(emb, None)


@pytest.mark.parametrize("fn", [mmr_rerank, maxsum_rerank, dpp_rerank])
def test_lambda_zero_is_relevance_order_and_inputs_unchanged(fn, clusters) -> None:
    rel, feats = clusters
    rel0, feats0 = rel.copy(), feats.copy()
    assert fn(rel, feats, 10, 0.0).tolist() == list(range(30))
    out = fn(rel, feats, 10, 0.5)
    assert sorted(out.tolist()) == list(range(30))  # a permutation
    assert np.array_equal(rel, rel0) and np.array_equal(feats, feats0)


@pytest.mark.parametrize("fn", [mmr_rerank, maxsum_rerank, dpp_rerank])
def test_diversity_grows_with_lambda(fn, clusters) -> None:
    rel, feats = clusters
    S = similarity_matrix(feats)
    ilds = [_ild(fn(rel, feats, 10, lam), S) for lam in (0.0, 0.2, 0.5, 0.9)]
    assert ilds[0] < 0.1  # relevance alone: all from one cluster
    assert ilds[-1] > 0.35 and ilds == sorted(ilds)
    top = fn(rel, feats, 10, 0.5)[:10]
    assert {int(i) // 10 for i in top} == {0, 1, 2}  # every cluster shows up
    assert top[0] == 0  # the best item stays first


def test_matrix_and_features_agree(clusters) -> None:
    rel, feats = clusters
    S = similarity_matrix(feats)
    assert mmr_rerank(rel, feats, 10, 0.3).tolist() == mmr_rerank(rel, S, 10, 0.3).tolist()


def test_maxsum_weighs_mean_not_max_similarity() -> None:
    """After picking items 0 and 1, items 2 and 3 tie on relevance. Item 2 is fairly
    close to both picks (max 0.6, mean 0.6); item 3 nearly duplicates item 1 but is far
    from item 0 (max 0.9, mean 0.45). MMR (max) avoids the near-duplicate; MaxSum
    (mean) takes it, since it adds more to the mean pairwise distance."""
    S = np.array([[1.0, 0.0, 0.6, 0.0],
                  [0.0, 1.0, 0.6, 0.9],
                  [0.6, 0.6, 1.0, 0.0],
                  [0.0, 0.9, 0.0, 1.0]])
    rel = np.array([1.0, 0.9, 0.5, 0.5])
    assert mmr_rerank(rel, S, 3, 0.5)[:3].tolist() == [0, 1, 2]
    assert maxsum_rerank(rel, S, 3, 0.5)[:3].tolist() == [0, 1, 3]


def test_lambda_validated(clusters) -> None:
    rel, feats = clusters
    with pytest.raises(ValidationError, match="'lam'"):
        mmr_rerank(rel, feats, 10, 1.5)


def test_category_cap() -> None:
    cats = np.array(["a"] * 8 + ["b"] * 2 + ["c"] * 5 + [""] * 5, dtype=object)
    order = np.arange(20)
    out = category_cap(order, cats, 3, 10)
    assert sorted(out.tolist()) == list(range(20))
    top = cats[out[:10]]
    assert max((top == c).sum() for c in "abc") <= 3
    assert out[:3].tolist() == [0, 1, 2]  # the best of each category keep their places
    # too little variety: the window is still filled
    out2 = category_cap(np.arange(6), np.array(["a"] * 6, dtype=object), 2, 5)
    assert len(out2) == 6 and out2[:2].tolist() == [0, 1]


def test_real_office_category_cap_and_mmr(office) -> None:
    """Real Office lists: cap 3 per leaf category holds in every top 10; MMR with
    category similarity raises category coverage."""
    from shopsense.rerank import apply

    cat = office["catalog"]
    covered: dict[str, list[int]] = {"base": []}
    pairs_apart: dict[str, list[float]] = {"base": [], "maxsum": []}

    def apart(leaves: np.ndarray) -> float:  # ILD under "same leaf category" similarity
        same = leaves[:, None] == leaves[None, :]
        return float((~same)[~np.eye(len(leaves), dtype=bool)].mean())

    for hits in candidate_lists(office, n_lists=60):
        out, _rep = apply(hits, cat, category_cap=3, k=10)
        leaves = cat.category_leaf[cat.indices(h.id for h in out[:10])]
        _vals, cnt = np.unique(leaves[leaves != ""], return_counts=True)
        assert cnt.max(initial=0) <= 3
        base_leaves = cat.category_leaf[cat.indices(h.id for h in hits[:10])]
        covered["base"].append(len(set(base_leaves)))
        pairs_apart["base"].append(apart(base_leaves))
        for method in ("mmr", "maxsum"):
            div, rep = apply(hits, cat, diversity=0.3, method=method, k=10)
            assert f"diversity_{method}" in rep.steps
            leaves = cat.category_leaf[cat.indices(h.id for h in div[:10])]
            covered.setdefault(method, []).append(len(set(leaves)))
            if method == "maxsum":
                pairs_apart["maxsum"].append(apart(leaves))
    assert np.mean(covered["mmr"]) > np.mean(covered["base"]) + 0.5
    assert np.mean(covered["maxsum"]) > np.mean(covered["base"]) + 0.2
    # Office lists start ~97% apart by category: the room left is small, but it must be used
    assert np.mean(pairs_apart["maxsum"]) > np.mean(pairs_apart["base"]) + 0.005
