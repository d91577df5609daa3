"""Fairness of exposure: keep each group's (brand, seller) share of
position-weighted exposure in the top k within bounds, losing little relevance.

Exposure of position p (0-based) is ``1/log2(p+2)`` (the DCG discount, the usual
browsing model; Singh & Joachims 2018). The greedy fills positions best-first
and accepts an item only when the constraints can still be met by the rest of
the list: a deterministic completion (largest deficit first, then best
relevance under the caps) is the witness. Because the witness is itself what
the next step can follow, a list found feasible at the first position ends
feasible; when no feasible list exists the best-effort list is returned and
flagged. Hand-written: no maintained library does per-list exposure bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from shopsense.errors import check_param

__all__ = ["ExposureBounds", "FairResult", "exposure_fair_rerank", "exposure_shares", "position_weights"]


def position_weights(k: int) -> np.ndarray:
    """The exposure of each of ``k`` positions: ``1 / log2(position + 1)``, position from 1."""
    return 1.0 / np.log2(np.arange(k) + 2.0)


@dataclass(frozen=True)
class ExposureBounds:
    """Allowed share of exposure per group in the top ``k``.

    ``max_share`` applies to every group unless ``max_by_group`` overrides it;
    ``min_by_group`` gives floors for named groups (e.g. a small brand the shop
    promised visibility to). Items with group '' are unconstrained.
    """

    k: int = 10
    max_share: float = 1.0
    max_by_group: Mapping[str, float] = field(default_factory=dict)
    min_by_group: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_param("k", self.k, isinstance(self.k, int) and self.k >= 1, "an int >= 1", "ExposureBounds")
        check_param("max_share", self.max_share, 0.0 < self.max_share <= 1.0, "a float in (0, 1]",
                    "ExposureBounds")
        for name, d in (("max_by_group", self.max_by_group), ("min_by_group", self.min_by_group)):
            for g, v in d.items():
                check_param(f"{name}[{g!r}]", v, 0.0 <= float(v) <= 1.0, "a float in [0, 1]",
                            "ExposureBounds")
        if sum(self.min_by_group.values()) > 1.0:
            check_param("min_by_group", dict(self.min_by_group), False, "floors summing to <= 1",
                        "ExposureBounds")

    def hi(self, g: str) -> float:
        return float(self.max_by_group.get(g, self.max_share))

    def lo(self, g: str) -> float:
        return float(self.min_by_group.get(g, 0.0))


@dataclass(frozen=True)
class FairResult:
    """The fair order of the candidates, whether the bounds could be met, the share of DCG
    given up for them, and each group's exposure share in the top ``k``."""

    order: np.ndarray  # indices into the candidates; top k first, then the rest
    feasible: bool
    relevance_cost: float  # 1 - DCG(relevance of fair top k) / DCG(relevance top k)
    shares: dict[str, float]


def exposure_shares(groups: np.ndarray, order: np.ndarray, k: int) -> dict[str, float]:
    """Each group's share of the position-weighted exposure of the top ``k`` of ``order``."""
    top = np.asarray(order)[:k]
    w = position_weights(len(top))
    tot = float(w.sum()) or 1.0
    out: dict[str, float] = {}
    for g, x in zip(np.asarray(groups, dtype=object)[top].tolist(), w.tolist()):
        out[g] = out.get(g, 0.0) + x / tot
    return out


def _complete(start: list[int], rank: list[int], groups: list[str], w: np.ndarray,
              bounds: ExposureBounds, used: set[int]) -> list[int] | None:
    """Deterministic completion of ``start`` to len(w) items meeting the bounds, or None."""
    K = len(w)
    W = float(w.sum())
    exp: dict[str, float] = {}
    for p, i in enumerate(start):
        exp[groups[i]] = exp.get(groups[i], 0.0) + w[p]
    out = list(start)
    taken = set(used) | set(start)
    eps = 1e-9
    for g, e in exp.items():
        if g and e > bounds.hi(g) * W + eps:
            return None
    while len(out) < K:
        p = len(out)
        deficits = {g: bounds.lo(g) * W - exp.get(g, 0.0) for g in bounds.min_by_group}
        needy = sorted((g for g, d in deficits.items() if d > eps), key=lambda g: -deficits[g])
        pick = None
        for g in needy:  # serve the biggest unmet floor first, with its best item
            for i in rank:
                if i not in taken and groups[i] == g and exp.get(g, 0.0) + w[p] <= bounds.hi(g) * W + eps:
                    pick = i
                    break
            if pick is not None:
                break
        if pick is None:
            for i in rank:
                g = groups[i]
                if i in taken:
                    continue
                if g and exp.get(g, 0.0) + w[p] > bounds.hi(g) * W + eps:
                    continue
                pick = i
                break
        if pick is None:
            return None
        out.append(pick)
        taken.add(pick)
        exp[groups[pick]] = exp.get(groups[pick], 0.0) + w[p]
    for g in bounds.min_by_group:
        if exp.get(g, 0.0) < bounds.lo(g) * W - eps:
            return None
    return out


def _group_plan(p0: int, exp: dict[str, float], left: dict[str, int], w: np.ndarray,
                bounds: ExposureBounds, budget: int = 20_000) -> list[str] | None:
    """Exact search for a group per remaining position meeting the bounds, or None.

    Items of one group are interchangeable for the constraints, so the search is
    over groups; groups in the same state (exposure, items left, bounds) are
    symmetric and tried once, and failed states are remembered. ``budget`` bounds
    the work on pathological inputs (then None: treated as infeasible).
    """
    K = len(w)
    W = float(w.sum())
    eps = 1e-9
    groups = list(left)
    failed: set[tuple] = set()
    nodes = [0]

    def key(p: int, e: dict[str, float]) -> tuple:
        return (p, tuple(sorted((round(e.get(g, 0.0), 9), left_now[g], bounds.lo(g), bounds.hi(g), g == "")
                                for g in groups)))

    left_now = dict(left)

    def rec(p: int, e: dict[str, float]) -> list[str] | None:
        if p == K:
            ok = all(e.get(g, 0.0) >= bounds.lo(g) * W - eps for g in bounds.min_by_group)
            return [] if ok else None
        nodes[0] += 1
        if nodes[0] > budget:
            return None
        deficit = sum(max(bounds.lo(g) * W - e.get(g, 0.0), 0.0) for g in bounds.min_by_group)
        if deficit > float(w[p:].sum()) + eps:
            return None
        k_ = key(p, e)
        if k_ in failed:
            return None
        # necessary condition: each group can take at most the number of the cheapest
        # remaining positions that fit under its cap; together they must fill the list
        cheap = np.cumsum(w[p:][::-1])
        room = 0
        for g in groups:
            if left_now[g] <= 0:
                continue
            if not g:
                room += left_now[g]
                continue
            cap_left = bounds.hi(g) * W - e.get(g, 0.0) + eps
            room += min(left_now[g], int(np.searchsorted(cheap, cap_left, side="right")))
            if room >= K - p:
                break
        if room < K - p:
            failed.add(k_)
            return None
        seen: set[tuple] = set()
        # groups with the largest unmet floor first, then the most items left (cheap to place)
        order = sorted(groups, key=lambda g: (-(bounds.lo(g) * W - e.get(g, 0.0)), -left_now[g]))
        for g in order:
            if left_now[g] <= 0:
                continue
            if g and e.get(g, 0.0) + w[p] > bounds.hi(g) * W + eps:
                continue
            sym = (round(e.get(g, 0.0), 9), left_now[g], bounds.lo(g), bounds.hi(g), g == "")
            if sym in seen:
                continue
            seen.add(sym)
            left_now[g] -= 1
            e[g] = e.get(g, 0.0) + w[p]
            tail = rec(p + 1, e)
            e[g] -= w[p]
            left_now[g] += 1
            if tail is not None:
                return [g, *tail]
        failed.add(k_)
        return None

    return rec(p0, dict(exp))


def _complete_exact(start: list[int], rank: list[int], groups: list[str], w: np.ndarray,
                    bounds: ExposureBounds) -> list[int] | None:
    """Like :func:`_complete` but exact (group-level search) when the greedy fails."""
    done = _complete(start, rank, groups, w, bounds, set())
    if done is not None:
        return done
    exp: dict[str, float] = {}
    for p, i in enumerate(start):
        exp[groups[i]] = exp.get(groups[i], 0.0) + w[p]
    W = float(w.sum())
    if any(g and e > bounds.hi(g) * W + 1e-9 for g, e in exp.items()):
        return None
    taken = set(start)
    left: dict[str, int] = {}
    for i in rank:
        if i not in taken:
            left[groups[i]] = left.get(groups[i], 0) + 1
    for g in bounds.min_by_group:
        left.setdefault(g, 0)
    plan = _group_plan(len(start), exp, left, w, bounds)
    if plan is None:
        return None
    out = list(start)
    for g in plan:
        i = next(i for i in rank if i not in taken and groups[i] == g)
        out.append(i)
        taken.add(i)
    return out


def exposure_fair_rerank(rel: np.ndarray, groups: np.ndarray, bounds: ExposureBounds) -> FairResult:
    """Order candidates so each group's exposure share in the top k is within ``bounds``.

    Floors for groups that have no candidates are dropped (nothing can meet them).
    """
    rel = np.asarray(rel, dtype=np.float64)
    n = len(rel)
    g_list = [str(x) for x in np.asarray(groups, dtype=object).tolist()]
    K = min(bounds.k, n)
    rank = np.argsort(-rel, kind="stable").tolist()
    present = set(g_list)
    b = bounds
    if any(g not in present for g in bounds.min_by_group):
        b = ExposureBounds(k=bounds.k, max_share=bounds.max_share, max_by_group=dict(bounds.max_by_group),
                           min_by_group={g: v for g, v in bounds.min_by_group.items() if g in present})
    w = position_weights(K)
    chosen: list[int] = []
    feasible = True
    counts: dict[str, int] = {}
    for g in g_list:
        counts[g] = counts.get(g, 0) + 1
    for g in b.min_by_group:
        counts.setdefault(g, 0)
    if _complete(chosen, rank, g_list, w, b, set()) is None and _group_plan(0, {}, counts, w, b) is None:
        K = 0  # no list can meet the bounds: skip straight to the best effort below
        feasible = False
        chosen = _best_effort([], rank, g_list, w, b)
    for _p in range(K):
        pick = None
        dead: set[str] = set()  # items of one group are interchangeable for feasibility
        for i in rank:  # best-first: the first acceptable item costs the least relevance
            if i in chosen or g_list[i] in dead:
                continue
            if _complete_exact(chosen + [i], rank, g_list, w, b) is not None:
                pick = i
                break
            dead.add(g_list[i])
        if pick is None:
            feasible = False
            best = _best_effort(chosen, rank, g_list, w, b)
            chosen = best
            break
        chosen.append(pick)
    K = min(bounds.k, n)
    rest = [i for i in rank if i not in set(chosen)]
    order = np.array(chosen + rest, dtype=np.int64)
    r0 = rel - rel.min()  # non-negative gains so the DCG ratio is meaningful
    ideal = float((r0[rank[:K]] * w).sum())
    got = float((r0[order[:K]] * w).sum())
    cost = 1.0 - got / ideal if ideal > 0 else 0.0
    return FairResult(order=order, feasible=feasible, relevance_cost=max(cost, 0.0),
                      shares=exposure_shares(np.asarray(g_list, dtype=object), order, K))


def _best_effort(chosen: list[int], rank: list[int], groups: list[str], w: np.ndarray,
                 bounds: ExposureBounds) -> list[int]:
    """Fill the rest of the window honouring the caps where possible, ignoring floors."""
    relaxed = ExposureBounds(k=bounds.k, max_share=bounds.max_share, max_by_group=dict(bounds.max_by_group))
    done = _complete_exact(chosen, rank, groups, w, relaxed)
    if done is not None:
        return done
    out = list(chosen)
    for i in rank:
        if len(out) >= len(w):
            break
        if i not in out:
            out.append(i)
    return out
