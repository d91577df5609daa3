"""Bundle selection: pick ``n`` candidates maximising relevance plus pairwise
complementarity under a price budget and a per-category cap.

The objective is quadratic (pairs), the instances are small (tens of
candidates, a handful picked) and the call must answer in milliseconds, so it
is solved exactly in-process by depth-first branch and bound seeded with the
greedy solution. A MIP solver (PuLP/CBC) would need a linearised model with
one variable per pair and a subprocess per call, tens of milliseconds before
any search; here the bound prunes almost everything. A node limit turns it into
an anytime search whose result says whether optimality was proven.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shopsense.errors import check_param

__all__ = ["BundleSolution", "bundle_objective", "solve_bundle"]


@dataclass(frozen=True)
class BundleSolution:
    """The bundle :func:`solve_bundle` chose: candidate positions, the objective value, whether
    the search proved it optimal, and how many branch-and-bound nodes it visited."""

    chosen: tuple[int, ...]  # candidate positions, in the order they were picked
    objective: float
    optimal: bool  # False when the node limit stopped the search first
    nodes: int


def bundle_objective(chosen: list[int] | tuple[int, ...], relevance: np.ndarray, pair: np.ndarray,
                     pair_weight: float = 1.0) -> float:
    """``sum(relevance) + pair_weight * sum over unordered pairs of pair``."""
    c = list(chosen)
    if not c:
        return 0.0
    sub = pair[np.ix_(c, c)]
    return float(relevance[c].sum() + pair_weight * np.triu(sub, 1).sum())


def solve_bundle(relevance: np.ndarray, pair: np.ndarray, price: np.ndarray, categories: np.ndarray,
                 n_pick: int, budget: float | None = None, max_per_category: int | None = 1,
                 pair_weight: float = 1.0, max_nodes: int = 50_000) -> BundleSolution:
    """Choose up to ``n_pick`` candidates (as many as feasible) maximising the objective.

    ``relevance`` (m,) >= 0, ``pair`` (m, m) symmetric >= 0, ``price`` (m,) >= 0
    (the budget left after the fixed items), ``categories`` (m,) ints, -1 for
    none (uncapped). Exact unless ``optimal`` is False in the result.

    Example
    -------
    >>> r = np.array([3.0, 2.0, 2.0]); p = np.zeros((3, 3)); p[1, 2] = p[2, 1] = 5
    >>> solve_bundle(r, p, np.ones(3), np.array([0, 1, 2]), n_pick=2).chosen
    (1, 2)
    """
    r = np.asarray(relevance, dtype=np.float64)
    P = np.asarray(pair, dtype=np.float64)
    cost = np.asarray(price, dtype=np.float64)
    cats = np.asarray(categories, dtype=np.int64)
    m = len(r)
    check_param("n_pick", n_pick, isinstance(n_pick, int) and n_pick >= 0, "an int >= 0", "solve_bundle")
    if P.shape != (m, m) or cost.shape != (m,) or cats.shape != (m,):
        raise ValueError("relevance, pair, price and categories must describe the same candidates")
    if np.any(r < 0) or np.any(P < 0) or np.any(cost < 0):
        raise ValueError("relevance, pair and price must be non-negative")
    cap = max_per_category
    ok = np.ones(m, dtype=bool) if budget is None else cost <= budget + 1e-9
    lam = float(pair_weight)
    pmax = (P * ok[None, :]).max(axis=1) if m else np.zeros(0)
    order = np.argsort(-(r + lam * pmax), kind="stable")
    order = order[ok[order]]
    # compact category codes so the per-category counts are one small array
    _, cat_c = np.unique(np.where(cats >= 0, cats, -1), return_inverse=True)
    cat_c = np.where(cats >= 0, cat_c, -1)
    n_cats = int(cat_c.max(initial=-1)) + 1
    nodes = 0

    for need_total in range(min(n_pick, len(order)), 0, -1):
        counts = np.zeros(max(n_cats, 1), dtype=np.int64)
        pair_sum = np.zeros(m)  # sum of P[:, s] over the chosen s, kept incrementally

        def blocked(idx: np.ndarray) -> np.ndarray:
            if cap is None:
                return np.zeros(len(idx), dtype=bool)
            c = cat_c[idx]
            return (c >= 0) & (counts[np.maximum(c, 0)] >= cap)  # noqa: B023 (used in this iteration)

        # greedy seed: best marginal gain that keeps the set feasible
        best: list[int] = []
        spent = 0.0
        for _ in range(need_total):
            gain = r[order] + lam * pair_sum[order]
            fit = ~np.isin(order, best) & ~blocked(order)
            if budget is not None:
                fit &= cost[order] <= budget - spent + 1e-9
            if not fit.any():
                break
            t = int(order[np.flatnonzero(fit)[np.argmax(gain[fit])]])
            best.append(t)
            spent += cost[t]
            pair_sum += P[:, t]
            if cap is not None and cat_c[t] >= 0:
                counts[cat_c[t]] += 1
        best_val = bundle_objective(best, r, P, lam) if len(best) == need_total else -np.inf
        counts[:] = 0
        pair_sum[:] = 0.0
        stopped = False
        cheapest = np.sort(cost[order])

        def dfs(pos: int, chosen: list[int], val: float, spent: float) -> None:
            nonlocal best, best_val, nodes, stopped
            nodes += 1
            if nodes > max_nodes:
                stopped = True
                return
            need = need_total - len(chosen)  # noqa: B023 (called within this iteration)
            if need == 0:
                if val > best_val + 1e-12:
                    best, best_val = list(chosen), val
                return
            rest = order[pos:]
            if len(rest) < need:
                return
            left = None if budget is None else budget - spent
            if left is not None and cheapest[:need].sum() > left + 1e-9:  # noqa: B023
                return
            # optimistic gain of each remaining item: its relevance, its pairs with
            # the chosen items, and its best possible pair with each later pick
            opt = r[rest] + lam * pair_sum[rest] + lam * (need - 1) / 2.0 * pmax[rest]  # noqa: B023
            bad = blocked(rest)
            if left is not None:
                bad |= cost[rest] > left + 1e-9
            opt[bad] = -np.inf
            top = np.partition(opt, len(opt) - need)[len(opt) - need:] if need < len(opt) else opt
            if not np.all(np.isfinite(top)) or val + top.sum() <= best_val + 1e-12:
                return
            for off in np.flatnonzero(~bad):
                if len(order) - (pos + off) < need:
                    break
                t = int(rest[off])
                c = int(cat_c[t])
                gain = r[t] + lam * pair_sum[t]  # noqa: B023
                if c >= 0:
                    counts[c] += 1  # noqa: B023
                np.add(pair_sum, P[:, t], out=pair_sum)  # noqa: B023
                chosen.append(t)
                dfs(pos + int(off) + 1, chosen, val + gain, spent + cost[t])
                chosen.pop()
                np.subtract(pair_sum, P[:, t], out=pair_sum)  # noqa: B023
                if c >= 0:
                    counts[c] -= 1  # noqa: B023
                if stopped:
                    return

        dfs(0, [], 0.0, 0.0)
        if len(best) == need_total and np.isfinite(best_val):
            return BundleSolution(tuple(int(t) for t in best), float(best_val), not stopped, nodes)
    return BundleSolution((), 0.0, True, nodes)
