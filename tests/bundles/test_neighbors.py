"""Scale paths of the complement model (the issue: `eval baskets` on a 49,688-item catalogue
was still inside ComplementModel.fit after 12 CPU-minutes): the pre-filtered top-k and
the blocked neighbours give exactly the reference answers, the HNSW graph finds the true
neighbours, the bounded EASE equals the unbounded one below its bound, and a refit with
other hyperparameters reuses the neighbours, the clusters and the EASE weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from shopsense.bundles import (
    ComplementModel,
    _complement,
    _neighbors,
    basket_matrix,
    text_knn,
    top_k_dense,
)
from shopsense.bundles._neighbors import MEMO, PAIRS, Memo, fingerprint, kmeans_codes


@pytest.fixture(autouse=True)
def _fresh_memo():
    MEMO.clear()
    PAIRS.clear()
    yield
    MEMO.clear()
    PAIRS.clear()


@pytest.fixture
def small_sample(monkeypatch):
    """A 64-column threshold sample, so rows of a few hundred columns take the pre-filter."""
    monkeypatch.setattr(_neighbors, "SAMPLE", 64)


def _reference_top_k(R: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The former bundles._complement._top_k, verbatim."""
    kk = min(k, R.shape[1])
    part = np.argpartition(-R, kk - 1, axis=1)[:, :kk]
    vals = np.take_along_axis(R, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(vals, order, axis=1)
    bad = ~np.isfinite(sc)
    idx[bad] = -1
    return idx, np.where(bad, 0.0, sc).astype(np.float32)


def _reference_knn(emb: np.ndarray, k: int, chunk: int = 2048) -> sparse.csr_matrix:
    """The former text_knn (exact, argpartition on every row), verbatim."""
    n = emb.shape[0]
    rows, cols, vals = [], [], []
    for s in range(0, n, chunk):
        sims = emb[s:s + chunk] @ emb.T
        idx = np.arange(s, min(s + chunk, n))
        sims[idx - s, idx] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(idx, k))
        cols.append(part.ravel())
        vals.append(np.take_along_axis(sims, part, axis=1).ravel())
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n), dtype=np.float32)


def _unit(n: int, d: int, seed: int = 0, clusters: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d))
    if clusters:
        v = 3.0 * rng.normal(size=(clusters, d))[rng.integers(clusters, size=n)] + v
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_dense_equals_the_reference_with_ties_and_masks(small_sample, dtype):
    rng = np.random.default_rng(1)
    R = rng.random((300, 900)).astype(dtype)
    R[:100] = np.round(R[:100], 2)  # many ties, inside and at the edge of the top k
    R[100:150, :20] = np.max(R[100:150], axis=1, keepdims=True)  # a tie for first place
    R[150:160, rng.integers(900, size=800)] = -np.inf  # masked items
    R[160:165] = -np.inf  # nothing left at all
    R[165:170, :5] = np.nan
    for k in (1, 10, 37, 64, 900):  # 64 and more: wider than the sample
        got = top_k_dense(R, k)
        idx, sc = _reference_top_k(R, k)
        np.testing.assert_array_equal(got.indices, idx)
        np.testing.assert_array_equal(got.scores, sc)


def test_top_k_dense_pads_when_k_exceeds_the_items():
    got = top_k_dense(np.array([[0.5, -np.inf, 0.7]]), k=5)
    assert got.indices.tolist() == [[2, 0, -1, -1, -1]]
    assert got.scores.shape == (1, 5)


def test_blocked_knn_equals_the_former_exact_graph(small_sample):
    emb = _unit(700, 24, clusters=15)
    emb[10] = emb[11]  # exact twins tie
    for k, chunk in ((5, 64), (20, 2048)):
        got = text_knn(emb, k, chunk=chunk)
        ref = _reference_knn(emb, k, chunk=chunk)
        np.testing.assert_array_equal(got.indptr, ref.indptr)
        np.testing.assert_array_equal(got.indices, ref.indices)
        np.testing.assert_array_equal(got.data, ref.data)


def test_hnsw_knn_recall(small_sample):
    pytest.importorskip("hnswlib")
    emb = _unit(3000, 32, clusters=30)
    k = 10
    ann = text_knn(emb, k, exact_max_items=0)
    exact = text_knn(emb, k)
    assert np.all(np.diff(ann.indptr) == k)
    assert all(i not in ann.indices[ann.indptr[i]:ann.indptr[i + 1]] for i in range(len(emb)))
    hits = sum(len(set(ann.indices[ann.indptr[i]:ann.indptr[i + 1]])
                   & set(exact.indices[exact.indptr[i]:exact.indptr[i + 1]])) for i in range(len(emb)))
    assert hits / (k * len(emb)) >= 0.95
    # the similarities are the true cosines of the pairs returned
    coo = ann.tocoo()
    np.testing.assert_allclose(coo.data, (emb[coo.row] * emb[coo.col]).sum(axis=1), atol=1e-5)


def test_hnsw_knn_with_exact_duplicates_never_returns_self():
    pytest.importorskip("hnswlib")
    emb = np.repeat(_unit(200, 16), 3, axis=0)  # every vector three times
    g = text_knn(emb, 4, exact_max_items=0)
    for i in range(len(emb)):
        row = g.indices[g.indptr[i]:g.indptr[i + 1]]
        assert len(row) == 4 and i not in row


def test_blas_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = 10.0 * np.eye(8)[:6]
    truth = rng.integers(6, size=3000)
    emb = (centres[truth] + rng.normal(size=(3000, 8))).astype(np.float32)
    codes = kmeans_codes(emb, 6, seed=0, exact_max_items=0, sample=1000)
    # one code per true cluster and one true cluster per code
    pairs = set(zip(truth.tolist(), codes.tolist()))
    assert len(pairs) == 6 and len({c for _, c in pairs}) == 6


def test_bounded_ease_equals_unbounded_when_everything_fits(groceries):
    X = basket_matrix(groceries["baskets"], groceries["n"])
    bought = int((np.asarray(X.sum(axis=0)).ravel() > 0).sum())
    a = ComplementModel(l2=50.0, ease_max_items=bought).fit(X).pair_scores_
    MEMO.clear()
    b = ComplementModel(l2=50.0, ease_max_items=100_000).fit(X).pair_scores_
    assert a.nnz > 0
    assert (a != b).nnz == 0


def test_items_beyond_the_ease_bound_fall_back_to_conditional_scores(groceries):
    X = basket_matrix(groceries["baskets"], groceries["n"])
    counts = np.asarray(X.sum(axis=0)).ravel()
    top = np.sort(np.argsort(-counts, kind="stable")[:40])
    m = ComplementModel(l2=50.0, ease_max_items=40).fit(X)
    P = m.pair_scores_.tocsr()
    rare = np.setdiff1d(np.flatnonzero(counts >= 20), top)
    assert len(rare) > 50
    # every fairly bought item outside the EASE set still has partners, and scores
    assert all(P[i].nnz > 0 for i in rare)
    assert np.all(m.rank([[int(rare[0])]], k=5).indices >= 0)
    # inside the set the weights are the EASE weights of those 40 items alone
    inside = ComplementModel(l2=50.0).fit(X[:, top]).pair_scores_.toarray()
    block = P[top][:, top].toarray()
    keep = inside > 0
    np.testing.assert_allclose(block[keep], inside[keep], rtol=1e-6)


def test_refit_with_other_hyperparameters_reuses_neighbours_clusters_and_ease(monkeypatch, groceries):
    X = basket_matrix(groceries["baskets"][:3000], groceries["n"])
    emb = _unit(groceries["n"], 16, seed=3)
    calls = {"knn": 0, "kmeans": 0, "ease": 0}

    def counting(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(_complement, "text_knn", counting("knn", _complement.text_knn))
    monkeypatch.setattr(_complement, "kmeans_codes", counting("kmeans", _complement.kmeans_codes))
    monkeypatch.setattr(_complement, "_ease_weights", counting("ease", _complement._ease_weights))
    first = ComplementModel(l2=20.0, text_weight=0.3).fit(X, embeddings=emb)
    # what the tuning loop changes: the signal weights, then the ridge penalty
    second = ComplementModel(l2=20.0, text_weight=0.0, category_weight=0.0, prior_weight=0.02).fit(
        X, embeddings=emb.copy())
    assert calls == {"knn": 1, "kmeans": 1, "ease": 1}
    assert second.copurchase_ is first.copurchase_  # the pair counts too
    ComplementModel(l2=200.0, text_weight=0.3).fit(X, embeddings=emb)
    assert calls == {"knn": 1, "kmeans": 1, "ease": 2}
    assert ComplementModel(min_support=3).fit(X).copurchase_ is not first.copurchase_
    # a memo hit is the same model as a fresh computation
    MEMO.clear()
    PAIRS.clear()
    fresh = ComplementModel(l2=20.0, text_weight=0.3).fit(X, embeddings=emb)
    assert calls == {"knn": 2, "kmeans": 2, "ease": 3}
    for attr in ("pair_scores_", "neighbors_", "substitutes_"):
        assert (getattr(first, attr) != getattr(fresh, attr)).nnz == 0
    np.testing.assert_array_equal(first.categories_, fresh.categories_)
    np.testing.assert_array_equal(second.categories_, fresh.categories_)
    # other embeddings are other neighbours
    ComplementModel(l2=20.0).fit(X, embeddings=_unit(groceries["n"], 16, seed=4))
    assert calls["knn"] == 3


def test_memo_is_bounded_and_keyed_by_content():
    memo = Memo(size=2)
    a = np.arange(10.0)
    assert fingerprint(a) == fingerprint(a.copy()) != fingerprint(a + 1)
    assert fingerprint(sparse.csr_matrix(a)) != fingerprint(sparse.csr_matrix(a + 1))
    for i in range(3):
        memo.get(i, lambda i=i: i)
    assert memo.get(0, lambda: "again") == "again"  # evicted: computed anew
    assert memo.get(2, lambda: "stale") == 2
    assert memo.hits == 1 and memo.misses == 4


def test_fit_and_rank_at_200k_items_stay_sparse():
    """No dense items x items array anywhere: 200,000 items fit in seconds and little memory."""
    rng = np.random.default_rng(0)
    n, nb = 200_000, 20_000
    lens = rng.integers(2, 12, nb)
    # a popular head and a long tail, like a real catalogue
    cols = np.minimum(rng.zipf(1.3, lens.sum()) - 1, n - 1)
    X = sparse.csr_matrix((np.ones(len(cols), np.float32), (np.repeat(np.arange(nb), lens), cols)), shape=(nb, n))
    X.sum_duplicates()
    X.data[:] = 1.0
    m = ComplementModel(ease_max_items=500).fit(X)
    assert m.pair_scores_.shape == (n, n)
    assert m.pair_scores_.nnz < 50 * n
    got = m.rank([[0, 1], [5]], k=10)
    assert got.indices.shape == (2, 10) and np.all(got.indices >= 0)


def test_score_equals_the_former_column_gather(or_split_small):
    """The items x carts gather of the cold-candidate signal gives the former floats exactly."""
    X, emb, carts = or_split_small
    m = ComplementModel(text_weight=1.0, category_weight=0.5, prior_weight=0.02).fit(X, embeddings=emb)
    Q = m._carts(carts)
    R = np.asarray((Q @ m.pair_scores_).todense(), dtype=np.float32)
    borrow = (Q @ sparse.diags(m.coldness_.astype(np.float32)) @ m.neighbors_).tocsr()
    R += np.asarray((borrow @ m.pair_scores_).todense(), dtype=np.float32)
    best = np.zeros_like(R)
    for s_ in range(m.neighbor_idx_.shape[1]):
        np.maximum(best, R[:, m.neighbor_idx_[:, s_]] * m.neighbor_sim_[None, :, s_], out=best)
    R += m.text_weight * best * m.coldness_[None, :].astype(np.float32)
    cat_q = np.asarray((Q @ m._G).todense(), dtype=np.float32) @ m.category_affinity_
    R += m.category_weight * cat_q[:, np.maximum(m.categories_, 0)] * m.category_share_[None, :]
    R += (m.prior_weight + 1e-6) * m.popularity_[None, :].astype(np.float32)
    np.testing.assert_array_equal(m.score(carts), R)


@pytest.fixture(scope="module")
def or_split_small(online_retail, or_vectors):
    X = basket_matrix(online_retail["baskets"][:1500], online_retail["n"])
    carts = [b[:-1] for b in online_retail["baskets"][1500:1700] if len(b) >= 2]
    return X, or_vectors, carts
