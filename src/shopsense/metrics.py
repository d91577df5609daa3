"""Ranking metrics: one implementation for the models (SASRec's early stopping), tests,
benchmarks and ``shopsense eval``.

A leaf module: it imports only numpy and the standard library, so any package
(``recommend``, ``bundles``, ``eval``...) can use it without an import cycle.

Conventions (the standard ones, so figures compare with published results):
- ``ranked``: (n_queries, k) int array of item indices, -1 for padding.
- graded gains: ``gain(i)`` from a per-query dict; DCG uses linear gains and
  log2(rank + 1) discounts; the ideal DCG comes from *all* judged gains of the
  query (not only the retrieved ones), so retrieval misses cost NDCG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["dcg", "gini", "hit_at_k", "loo_metrics", "mrr", "ndcg_at_k", "recall_at_k"]

_DISCOUNT = 1.0 / np.log2(np.arange(2, 2 + 1000))


def dcg(gains: np.ndarray) -> float:
    """Discounted cumulative gain of gains in rank order: ``sum(g_i / log2(i + 1))``, i from 1."""
    g = np.asarray(gains, dtype=np.float64)
    return float((g * _DISCOUNT[: len(g)]).sum())


def ndcg_at_k(ranked: Sequence[int] | np.ndarray, gains: Mapping[int, float], k: int = 10) -> float:
    """NDCG@k of one ranked list against graded ``gains`` (missing items gain 0)."""
    top = [int(i) for i in list(ranked)[:k] if int(i) >= 0]
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = dcg(np.array(ideal))
    if idcg <= 0:
        return 0.0
    return dcg(np.array([gains.get(i, 0.0) for i in top])) / idcg


def recall_at_k(ranked: Sequence[int] | np.ndarray, relevant: set[int] | Mapping[int, float], k: int) -> float:
    """Share of the relevant items (gain > 0) found in the top ``k`` of ``ranked``."""
    rel = {i for i, g in relevant.items() if g > 0} if isinstance(relevant, Mapping) else set(relevant)
    if not rel:
        return 0.0
    top = {int(i) for i in list(ranked)[:k]}
    return len(top & rel) / len(rel)


def mrr(ranked: Sequence[int] | np.ndarray, relevant: set[int] | Mapping[int, float], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant item (within the top ``k``), 0 when none."""
    rel = {i for i, g in relevant.items() if g > 0} if isinstance(relevant, Mapping) else set(relevant)
    for r, i in enumerate(list(ranked)[: k or len(ranked)], start=1):
        if int(i) in rel:
            return 1.0 / r
    return 0.0


def hit_at_k(ranked: Sequence[int] | np.ndarray, target: int, k: int) -> float:
    """1.0 when ``target`` is in the top ``k`` of ``ranked``, else 0.0."""
    return float(int(target) in {int(i) for i in list(ranked)[:k]})


def loo_metrics(ranked: np.ndarray, targets: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per-user Recall@k (= Hit@k) and NDCG@k for leave-one-out with one target each.

    ``ranked`` is (n_users, >=k); returns arrays of per-user scores so callers can
    average them or bootstrap confidence intervals.
    """
    top = np.asarray(ranked)[:, :k]
    match = top == np.asarray(targets)[:, None]
    hit = match.any(axis=1).astype(np.float64)
    pos = np.where(hit > 0, match.argmax(axis=1), 0)
    ndcg = np.where(hit > 0, 1.0 / np.log2(pos + 2.0), 0.0)
    return {f"recall@{k}": hit, f"ndcg@{k}": ndcg}


def gini(exposure: np.ndarray) -> float:
    """Gini coefficient of a non-negative exposure vector (0 = equal, 1 = one item has all)."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    if x.sum() <= 0:
        return 0.0
    n = len(x)
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)
