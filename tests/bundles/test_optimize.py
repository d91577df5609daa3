"""The bundle solver: exact (equals brute force), and never over budget or category cap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsense.bundles import bundle_objective, solve_bundle


def brute_force(r, P, price, cats, n_pick, budget, cap):
    for size in range(min(n_pick, len(r)), 0, -1):
        best, best_val = None, -np.inf
        for combo in itertools.combinations(range(len(r)), size):
            c = list(combo)
            if budget is not None and price[c].sum() > budget + 1e-9:
                continue
            if cap is not None:
                v = cats[c][cats[c] >= 0]
                if len(v) and np.bincount(v).max() > cap:
                    continue
            val = bundle_objective(c, r, P)
            if val > best_val + 1e-12:
                best, best_val = c, val
        if best is not None:
            return best, best_val
    return [], 0.0


@st.composite
def instances(draw):
    m = draw(st.integers(0, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    r = rng.random(m) * draw(st.sampled_from([0.0, 1.0, 5.0]))
    P = rng.random((m, m)) * (rng.random((m, m)) < 0.5) * draw(st.sampled_from([0.0, 1.0, 3.0]))
    P = np.triu(P, 1)
    P = P + P.T
    price = np.round(rng.random(m) * 20, 2)
    cats = rng.integers(-1, 3, size=m)
    budget = draw(st.one_of(st.none(), st.floats(0, 60, allow_nan=False)))
    cap = draw(st.sampled_from([None, 1, 2]))
    n_pick = draw(st.integers(0, 4))
    return r, P, price, cats, n_pick, budget, cap


@settings(max_examples=150, deadline=None)
@given(instances())
def test_solution_is_feasible_and_optimal(inst):
    r, P, price, cats, n_pick, budget, cap = inst
    sol = solve_bundle(r, P, price, cats, n_pick, budget=budget, max_per_category=cap)
    chosen = list(sol.chosen)
    assert len(chosen) == len(set(chosen)) <= n_pick
    if budget is not None:
        assert price[chosen].sum() <= budget + 1e-9
    if cap is not None and chosen:
        v = cats[chosen][cats[chosen] >= 0]
        assert not len(v) or np.bincount(v).max() <= cap
    assert sol.optimal
    best, best_val = brute_force(r, P, price, cats, n_pick, budget, cap)
    assert len(chosen) == len(best)
    assert sol.objective == pytest.approx(best_val, abs=1e-9)
    assert sol.objective == pytest.approx(bundle_objective(chosen, r, P), abs=1e-9)


def test_pairs_can_beat_individually_better_items():
    r = np.array([1.0, 0.6, 0.6, 0.9])
    P = np.zeros((4, 4))
    P[1, 2] = P[2, 1] = 1.0
    sol = solve_bundle(r, P, np.ones(4), np.array([0, 1, 2, 3]), n_pick=2)
    assert set(sol.chosen) == {1, 2}


def test_node_limit_returns_a_feasible_answer_marked_not_optimal():
    rng = np.random.default_rng(0)
    m = 40
    r, P = rng.random(m), rng.random((m, m))
    P = (P + P.T) / 2
    sol = solve_bundle(r, P, rng.random(m) * 10, np.full(m, -1), n_pick=6, budget=30.0, max_nodes=50)
    assert not sol.optimal and len(sol.chosen) == 6


def test_bad_inputs():
    with pytest.raises(ValueError):
        solve_bundle(np.array([-1.0]), np.zeros((1, 1)), np.ones(1), np.zeros(1, int), 1)
    with pytest.raises(ValueError):
        solve_bundle(np.ones(2), np.zeros((3, 3)), np.ones(2), np.zeros(2, int), 1)
