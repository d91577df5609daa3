"""Co-purchase mining: counts, support / confidence / lift, pruning, decay, baskets from events."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from shopsense.bundles import CoPurchase, basket_matrix, baskets_from_events, decay_weights
from shopsense.errors import NotFittedError, ValidationError


def test_pair_counts_match_a_python_count_on_groceries(groceries):
    baskets = groceries["baskets"][:2000]
    X = basket_matrix(baskets, groceries["n"])
    cp = CoPurchase(min_support=3).fit(X)
    pairs = Counter(p for b in baskets for p in itertools.combinations(sorted(set(b.tolist())), 2))
    items = Counter(i for b in baskets for i in set(b.tolist()))
    kept = {p: n for p, n in pairs.items() if n >= 3}
    assert cp.pair_counts_.nnz == 2 * len(kept)
    for (i, j), n in list(kept.items())[:200]:
        assert cp.pair_counts_[i, j] == n == cp.pair_counts_[j, i]
        assert cp.support(i, j) == pytest.approx(n / len(baskets))
        assert cp.confidence(i, j) == pytest.approx(n / items[i])
        assert cp.lift(i, j) == pytest.approx(n * len(baskets) / (items[i] * items[j]))
    below = [p for p, n in pairs.items() if n < 3]
    assert all(cp.pair_counts_[i, j] == 0 for i, j in below[:200])


def test_lift_and_confidence_agree_with_mlxtend(groceries):
    """Parity with the reference implementation of association rules."""
    from mlxtend.frequent_patterns import apriori, association_rules

    baskets = groceries["baskets"]
    X = basket_matrix(baskets, groceries["n"])
    cp = CoPurchase(min_support=1).fit(X)
    df = pd.DataFrame(X.toarray().astype(bool))
    freq = apriori(df, min_support=0.02, max_len=2)
    rules = association_rules(freq, num_itemsets=len(baskets), metric="lift", min_threshold=0.0)
    assert len(rules) > 20
    lift, conf = cp.lift_matrix(), cp.confidence_matrix()
    for a, c, l, cf in zip(rules.antecedents, rules.consequents, rules.lift, rules.confidence):
        (i,), (j,) = tuple(a), tuple(c)
        assert lift[i, j] == pytest.approx(l, rel=1e-6)
        assert conf[i, j] == pytest.approx(cf, rel=1e-6)


def test_top_partners_by_lift_are_sorted_and_real(online_retail):
    X = basket_matrix(online_retail["baskets"], online_retail["n"])
    cp = CoPurchase(min_support=5).fit(X)
    i = int(np.argmax(cp.item_counts_))
    idx, vals = cp.top(i, k=10, metric="lift")
    assert len(idx) == 10 and np.all(np.diff(vals) <= 1e-12)
    assert all(cp.pair_counts_[i, j] >= 5 for j in idx)
    with pytest.raises(ValidationError, match="'metric'"):
        cp.top(i, metric="jaccard")


def test_time_decay_halves_old_baskets():
    X = basket_matrix([[0, 1], [0, 1], [0, 2]], n_items=3)
    day = 86400.0
    w = decay_weights(np.array([0.0, 10 * day, 10 * day]), half_life_days=10)
    assert w.tolist() == [0.5, 1.0, 1.0]
    cp = CoPurchase(min_support=1).fit(X, weights=w)
    assert cp.pair_counts_[0, 1] == pytest.approx(1.5)
    assert cp.pair_counts_[0, 2] == pytest.approx(1.0)
    assert cp.item_counts_[0] == 3  # raw counts stay for the support threshold


def test_unfitted_and_bad_params():
    with pytest.raises(NotFittedError):
        CoPurchase().lift(0, 1)
    with pytest.raises(ValidationError, match="'min_support'"):
        CoPurchase(min_support=0)


def test_baskets_from_events_groups_sessions_and_days():
    index = {"a": 0, "b": 1, "c": 2}
    day = 86400.0
    user = np.array(["u1", "u1", "u1", "u2", "u2", "u1", "u1"], dtype=object)
    item = np.array(["a", "b", "c", "a", "c", "zz", "a"], dtype=object)
    typ = np.array(["purchase", "add_to_cart", "view", "purchase", "purchase", "purchase", "purchase"],
                   dtype=object)
    ts = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 2 * day], dtype=np.float64)
    sess = np.array(["s1", "s1", "s1", None, None, "s1", None], dtype=object)
    b = baskets_from_events(user, item, typ, ts, sess, index)
    rows = sorted(tuple(np.flatnonzero(r)) for r in b.matrix.toarray())
    # s1 = {a, b} (the view and the unknown item do not count); u2 day 0 = {a, c}; u1 day 2 = {a}
    assert rows == [(0,), (0, 1), (0, 2)]
    assert sorted(b.user.tolist()) == ["u1", "u1", "u2"]
