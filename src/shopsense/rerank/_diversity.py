"""Diversity re-ranking over arrays: MMR, MaxSum, DPP greedy MAP and category caps.

All functions take the candidates' relevance (higher is better) and an item
similarity (a (n, n) matrix or (n, d) feature rows whose dot products are the
similarity) and return a new order (indices into the candidates); inputs are
never changed. One knob, ``lam`` in [0, 1], weighs diversity: 0 keeps the
relevance order, 1 cares only about diversity.

Hand-written because the libraries that implement these (e.g. RecBole) pull a
training framework; the algorithms are a few vectorised lines each.
"""

from __future__ import annotations

import numpy as np

from shopsense.errors import check_param

__all__ = ["category_cap", "dpp_rerank", "item_features", "maxsum_rerank", "mmr_rerank", "similarity_matrix"]


def _norm_rel(rel: np.ndarray) -> np.ndarray:
    """Relevance min-max scaled to [0, 1] so one lambda means the same on every surface."""
    r = np.asarray(rel, dtype=np.float64)
    lo, hi = float(r.min()), float(r.max())
    return (r - lo) / (hi - lo) if hi > lo else np.ones_like(r)


def item_features(embeddings: np.ndarray | None, categories: np.ndarray | None,
                  category_weight: float = 0.5) -> np.ndarray | None:
    """Feature rows whose dot product is ``(1-w)·cos(emb) + w·[same category]``.

    Built as features (not a matrix) so the similarity is positive semi-definite,
    which the DPP needs. Returns None when there is nothing to compare.
    """
    parts = []
    w = float(category_weight)
    if embeddings is not None:
        e = np.asarray(embeddings, dtype=np.float64)
        n = np.linalg.norm(e, axis=1, keepdims=True)
        e = np.divide(e, n, out=np.zeros_like(e), where=n > 0)
        parts.append(e * np.sqrt(1.0 - w if categories is not None else 1.0))
    if categories is not None:
        cats = np.asarray(categories, dtype=object)
        known = cats != ""
        uniq, inv = np.unique(cats.astype(str), return_inverse=True)
        onehot = np.zeros((len(cats), len(uniq)))
        onehot[np.arange(len(cats)), inv] = 1.0
        onehot[~known] = 0.0  # an unknown category is not "the same" as another unknown
        parts.append(onehot * np.sqrt(w if embeddings is not None else 1.0))
    if not parts:
        return None
    return np.hstack(parts)


def similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Dot-product similarity of feature rows, clipped to [0, 1]."""
    # float32 on purpose: a small float64 GEMM lets multi-threaded OpenBLAS spin on a
    # busy CPU (measured 75 ms vs 0.1 ms for 100 x 391); similarities need no more precision
    f = np.asarray(features, dtype=np.float32)
    return np.clip(f @ f.T, 0.0, 1.0).astype(np.float64)


def _row_fn(sim: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    """Similarity rows on demand: both re-rankers need only k rows, not the n x n matrix.

    From features the row is an element-wise product and sum, not a BLAS call: a
    small GEMM/GEMV makes multi-threaded OpenBLAS wait for a worker thread on a
    busy CPU (measured 60-90 ms instead of 0.1 ms), and k rows cost less anyway.
    """
    s = np.asarray(sim)
    if s.shape == (n, n):
        s64 = s.astype(np.float64, copy=False)
        return lambda j: s64[j]
    if s.ndim == 2 and s.shape[0] == n:
        f = np.ascontiguousarray(s, dtype=np.float32)
        return lambda j: np.clip((f * f[j]).sum(axis=1, dtype=np.float64), 0.0, 1.0)
    raise ValueError(f"similarity must be (n, n) or (n, d) with n={n}; got shape {s.shape}")


def _start(rel: np.ndarray, k: int, lam: float, owner: str) -> tuple[np.ndarray, int, np.ndarray]:
    """Shared opening of the greedy re-rankers: check lambda, relevance as float64,
    k capped at the list length, and the plain relevance order."""
    check_param("lam", lam, 0.0 <= lam <= 1.0, "a float in [0, 1]", owner)
    rel = np.asarray(rel, dtype=np.float64)
    return rel, min(int(k), len(rel)), np.argsort(-rel, kind="stable")


def _greedy(rel: np.ndarray, sim: np.ndarray, k: int, lam: float, owner: str, mean: bool) -> np.ndarray:
    """Greedy ``(1-lam)·rel - lam·redundancy`` selection shared by MMR (redundancy = the
    largest similarity to a picked item) and MaxSum (the mean similarity to them)."""
    rel, k, base = _start(rel, k, lam, owner)
    if lam == 0.0 or len(rel) <= 1 or k <= 1:
        return base
    n = len(rel)
    row = _row_fn(sim, n)
    r = (1.0 - lam) * _norm_rel(rel)
    red = np.zeros(n)  # max, or running sum, of similarity to the picked items
    taken = np.zeros(n, dtype=bool)
    out = np.empty(k, dtype=np.int64)
    j = int(base[0])
    for t in range(k):
        if t:
            score = r - lam * (red / t if mean else red)
            score[taken] = -np.inf
            j = int(np.argmax(score))
        out[t] = j
        taken[j] = True
        if mean:
            red += row(j)
        else:
            np.maximum(red, row(j), out=red)
    rest = base[~taken[base]]
    return np.concatenate([out, rest])


def mmr_rerank(rel: np.ndarray, sim: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Maximal Marginal Relevance (Carbonell & Goldstein 1998).

    Picks, k times, the candidate maximising ``(1-lam)·rel - lam·max_sim_to_picked``
    (relevance min-max scaled); the rest keep their relevance order after the k.
    Pushes hardest against near-duplicates.
    """
    return _greedy(rel, sim, k, lam, "mmr_rerank", mean=False)


def maxsum_rerank(rel: np.ndarray, sim: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Greedy max-sum diversification (after Gollapudi & Sharma, WWW 2009).

    Like MMR with the *mean* similarity to the picked items in place of the largest:
    each step adds what most raises intra-list diversity (mean pairwise distance) per
    unit of relevance, so it buys more ILD for the same accuracy than MMR
    (bench/rerank.py), while tolerating a near-duplicate pair when the rest is varied.
    """
    return _greedy(rel, sim, k, lam, "maxsum_rerank", mean=True)


def dpp_rerank(rel: np.ndarray, sim: np.ndarray, k: int, lam: float, jitter: float = 1e-3) -> np.ndarray:
    """Fast greedy MAP inference for a DPP (Chen, Zhang & Zhou, NeurIPS 2018).

    Kernel ``L = diag(q)·S·diag(q)`` with ``q = exp(alpha·rel)``, ``alpha =
    (1-lam)/(2·lam)`` so that the objective is ``(1-lam)·sum(rel) + lam·logdet(S_Y)``;
    incremental Cholesky updates make each step O(n·t). ``S`` must be positive
    semi-definite (dot products of feature rows are); ``jitter`` keeps exact
    duplicates selectable, last.
    """
    rel, k, base = _start(rel, k, lam, "dpp_rerank")
    if lam == 0.0 or len(rel) <= 1 or k <= 1:
        return base
    n = len(rel)
    row = _row_fn(sim, n)
    alpha = min((1.0 - lam) / (2.0 * lam), 50.0)  # cap keeps exp() finite
    q = np.exp(alpha * (_norm_rel(rel) - 1.0))  # shift so the best item has q = 1
    # L = diag(q) S diag(q) + jitter * diag(q^2); only the picked rows are ever formed
    diag = np.array([row(i)[i] for i in range(n)]) if np.asarray(sim).shape == (n, n) else \
        np.clip((np.asarray(sim, dtype=np.float64) ** 2).sum(axis=1), 0.0, 1.0)
    c = np.zeros((k, n))
    d2 = (diag + jitter) * q * q
    taken = np.zeros(n, dtype=bool)
    out: list[int] = []
    j = int(np.argmax(d2))
    for t in range(k):
        out.append(j)
        taken[j] = True
        if t == k - 1:
            break
        Lj = q[j] * q * row(j)
        Lj[j] += jitter * q[j] * q[j]
        # explicit sum instead of c[:t, j] @ c[:t]: no BLAS call (see _row_fn)
        e = (Lj - (c[:t, j][:, None] * c[:t]).sum(axis=0)) / np.sqrt(d2[j])
        c[t] = e
        d2 = d2 - e * e
        d2[taken] = -np.inf
        j = int(np.argmax(d2))
        if not d2[j] > 1e-12 * q[j] ** 2:  # no gain left: fill by relevance
            break
    picked = np.array(out, dtype=np.int64)
    rest = base[~taken[base]]
    return np.concatenate([picked, rest])


def category_cap(order: np.ndarray, categories: np.ndarray, cap: int, top: int) -> np.ndarray:
    """Reorder so that at most ``cap`` items of one category sit in the first ``top``.

    Items that would break the cap move down just below the window, keeping their
    order; when too few other items exist, the window is filled with them anyway.
    Items with an unknown ('') category are never capped.
    """
    check_param("cap", cap, isinstance(cap, int) and cap >= 1, "an int >= 1", "category_cap")
    order = np.asarray(order, dtype=np.int64)
    cats = np.asarray(categories, dtype=object)
    counts: dict[object, int] = {}
    head: list[int] = []
    deferred: list[int] = []
    rest_start = len(order)
    for pos, i in enumerate(order.tolist()):
        if len(head) >= top:
            rest_start = pos
            break
        c = cats[i]
        if c != "" and counts.get(c, 0) >= cap:
            deferred.append(i)
            continue
        counts[c] = counts.get(c, 0) + 1
        head.append(i)
    tail = order[rest_start:].tolist() if len(head) >= top else []
    if len(head) < top:  # not enough variety: fill the window with deferred items
        need = top - len(head)
        head += deferred[:need]
        deferred = deferred[need:]
    return np.array(head + deferred + tail, dtype=np.int64)
