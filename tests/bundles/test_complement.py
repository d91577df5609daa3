"""The complement model on real slices: it completes baskets better than popularity,
never returns cart items or their substitutes, and reaches cold items through text."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from shopsense.bundles import ComplementModel, basket_matrix, text_knn
from shopsense.errors import NotFittedError, ValidationError
from shopsense.eval import evaluate_completion, hide_one, split_baskets


@pytest.fixture(scope="module")
def or_split(online_retail):
    split = split_baskets(online_retail["baskets"], mode="time", test_fraction=0.2)
    X = basket_matrix(split.train, online_retail["n"])
    cases = hide_one(split.test, seed=0)
    return X, cases


@pytest.fixture(scope="module")
def or_model(or_split, or_vectors):
    X, _ = or_split
    return ComplementModel(l2=20.0, text_weight=0.3).fit(X, embeddings=or_vectors)


def _pop_rank(X):
    pop = np.asarray(X.sum(axis=0)).ravel().astype(float)

    def rank(ctx, k):
        out = []
        for c in ctx:
            s = pop.copy()
            s[c] = -1
            out.append(np.argsort(-s, kind="stable")[:k])
        return np.array(out)
    return rank


def test_beats_popularity_on_online_retail_slice(or_split, or_model):
    X, cases = or_split
    assert len(cases) > 300
    ours = evaluate_completion(lambda c, k: or_model.rank(c, k=k).indices, cases, k=10)
    pop = evaluate_completion(_pop_rank(X), cases, k=10)
    assert ours["hit@10"].mean() > 2 * pop["hit@10"].mean()
    assert ours["hit@10"].mean() > 0.10


def test_beats_popularity_on_groceries(groceries):
    split = split_baskets(groceries["baskets"], mode="random", test_fraction=0.2, seed=0)
    X = basket_matrix(split.train, groceries["n"])
    cases = hide_one(split.test, seed=0)
    m = ComplementModel(l2=200.0).fit(X, categories=groceries["categories"])
    ours = evaluate_completion(lambda c, k: m.rank(c, k=k).indices, cases, k=10)
    pop = evaluate_completion(_pop_rank(X), cases, k=10)
    assert ours["hit@10"].mean() > pop["hit@10"].mean()
    assert ours["ndcg@10"].mean() > pop["ndcg@10"].mean()


def test_conditional_item_model_also_works(or_split):
    X, cases = or_split
    m = ComplementModel(item_model="conditional").fit(X)
    r = evaluate_completion(lambda c, k: m.rank(c, k=k).indices, cases, k=10)
    pop = evaluate_completion(_pop_rank(X), cases, k=10)
    assert r["hit@10"].mean() > pop["hit@10"].mean()


def test_rank_never_returns_cart_items_nor_substitutes(or_split, or_model):
    _, cases = or_split
    carts = cases.contexts[:200]
    ranked = or_model.rank(carts, k=20).indices
    subs = or_model.substitute_mask(carts)
    assert or_model.substitutes_.nnz > 0
    for q, c in enumerate(carts):
        got = ranked[q][ranked[q] >= 0]
        assert not set(got) & set(c.tolist())
        assert not subs[q, got].any()


def test_batch_equals_loop(or_split, or_model):
    _, cases = or_split
    carts = cases.contexts[:20]
    batch = or_model.rank(carts, k=10)
    for q, c in enumerate(carts):
        one = or_model.rank([c], k=10)
        np.testing.assert_array_equal(one.indices[0], batch.indices[q])
        np.testing.assert_allclose(one.scores[0], batch.scores[q], rtol=1e-5)


def test_cold_item_reached_through_text(or_split, or_vectors):
    """An item never bought gets recommended when its text twin is a strong complement."""
    X, _ = or_split
    n = X.shape[1]
    warm = ComplementModel(l2=20.0).fit(X)
    counts = np.asarray(X.sum(axis=0)).ravel()
    anchor = int(np.argmax(counts))
    partner = int(warm.rank([[anchor]], k=1).indices[0, 0])
    # a new catalogue item: the partner's text, no baskets at all
    emb = np.vstack([or_vectors, or_vectors[partner]])
    X2 = sparse.hstack([X, sparse.csr_matrix((X.shape[0], 1))]).tocsr()
    cold = n
    without_text = ComplementModel(l2=20.0).fit(X2)
    with_text = ComplementModel(l2=20.0, text_weight=1.0, substitute_min_sim=1.1).fit(X2, embeddings=emb)
    assert cold not in without_text.rank([[anchor]], k=50).indices[0]
    assert cold in with_text.rank([[anchor]], k=50).indices[0]
    # and a cold item in the cart borrows its twin's partners
    assert without_text.score([[cold]])[0].max() < 1e-3
    got = with_text.rank([[cold]], k=20).indices[0]
    assert set(got) & set(warm.rank([[partner]], k=20).indices[0].tolist())


def test_category_affinity_generalises_on_groceries(groceries):
    """Pairs never seen together still score through their categories."""
    X = basket_matrix(groceries["baskets"][:500], groceries["n"])
    m = ComplementModel(l2=50.0, category_weight=1.0).fit(X, categories=groceries["categories"])
    s = m.score([[0]])[0]
    unseen = np.flatnonzero(np.asarray((X.T @ X)[0].todense()).ravel() == 0)
    unseen = unseen[unseen != 0]
    assert (s[unseen] > 1e-5).any()


def test_substitutes_are_similar_and_rarely_bought_together(online_retail, or_model):
    """Substitutes share the product type (last word of the description) far more
    often than random pairs, and none is bought together with lift >= 1."""
    last = np.array([t.split()[-1] if t.split() else "" for t in online_retail["titles"]])
    lift = or_model.copurchase_.lift_matrix()
    has = np.flatnonzero(np.diff(or_model.substitutes_.indptr) > 0)[:200]
    same, total = 0, 0
    for i in has:
        subs, scores = or_model.substitutes(int(i), k=5)
        assert np.all(np.diff(scores) <= 1e-7)
        assert all(lift[i, j] < or_model.substitute_max_lift for j in subs)
        same += (last[subs] == last[i]).sum()
        total += len(subs)
    rng = np.random.default_rng(0)
    a, b = rng.integers(len(last), size=(2, 5000))
    base = (last[a] == last[b]).mean()
    assert same / total > 5 * base


def test_save_load_round_trip(tmp_path, or_split, or_model):
    _, cases = or_split
    or_model.save(tmp_path / "m")
    back = ComplementModel.load(tmp_path / "m")
    carts = cases.contexts[:30]
    np.testing.assert_array_equal(back.rank(carts, k=10).indices, or_model.rank(carts, k=10).indices)
    assert back.get_params() == or_model.get_params()


def test_errors():
    with pytest.raises(NotFittedError):
        ComplementModel().score([[0]])
    with pytest.raises(ValidationError, match="'item_model'"):
        ComplementModel(item_model="magic")


def test_text_knn_is_exact():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    g = text_knn(v, 5, chunk=64)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    expect = np.sort(np.argsort(-sims, axis=1)[:, :5], axis=1)
    got = np.sort(np.array([g.indices[g.indptr[i]:g.indptr[i + 1]] for i in range(300)]), axis=1)
    np.testing.assert_array_equal(got, expect)
