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


def _feasible(price: np.ndarray, cats: np.ndarray, chosen: list[int], budget: float | None,
              max_per_category: int | None) -> bool:
    if budget is not None and price[chosen].sum() > budget + 1e-9:
        return False
    if max_per_category is not None:
        valid = cats[chosen][cats[chosen] >= 0]
        if len(valid) and np.bincount(valid).max() > max_per_category:
            return False
    return True


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
    nodes = 0

    for need_total in range(min(n_pick, len(order)), 0, -1):
        # greedy seed: best marginal gain that keeps the set feasible
        best: list[int] = []
        for _ in range(need_total):
            gains = [(r[t] + lam * P[t, best].sum(), t) for t in order
                     if t not in best and _feasible(cost, cats, best + [t], budget, cap)]
            if not gains:
                break
            best.append(max(gains)[1])
        best_val = bundle_objective(best, r, P, lam) if len(best) == need_total else -np.inf
        stopped = False
        cheapest = np.sort(cost[order])

        def dfs(pos: int, chosen: list[int], val: float, spent: float, counts: dict[int, int]) -> None:
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
            opt = r[rest] + lam * (P[np.ix_(rest, chosen)].sum(axis=1) if chosen else 0.0) \
                + lam * (need - 1) / 2.0 * pmax[rest]
            if left is not None:
                opt = np.where(cost[rest] <= left + 1e-9, opt, -np.inf)
            if cap is not None:
                full = [c for c, n in counts.items() if n >= cap]
                if full:
                    opt = np.where(np.isin(cats[rest], full), -np.inf, opt)
            top = np.partition(opt, len(opt) - need)[len(opt) - need:] if need < len(opt) else opt
            if not np.all(np.isfinite(top)) or val + top.sum() <= best_val + 1e-12:
                return
            for off, t in enumerate(rest):
                if not np.isfinite(opt[off]):
                    continue
                if len(order) - (pos + off) < need:
                    break
                c = int(cats[t])
                gain = r[t] + lam * (P[t, chosen].sum() if chosen else 0.0)
                if c >= 0:
                    counts[c] = counts.get(c, 0) + 1
                chosen.append(int(t))
                dfs(pos + off + 1, chosen, val + gain, spent + cost[t], counts)
                chosen.pop()
                if c >= 0:
                    counts[c] -= 1
                if stopped:
                    return

        dfs(0, [], 0.0, 0.0, {})
        if len(best) == need_total and np.isfinite(best_val):
            return BundleSolution(tuple(int(t) for t in best), float(best_val), not stopped, nodes)
    return BundleSolution((), 0.0, True, nodes)
