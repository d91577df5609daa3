"""Fusion of ranked lists and score vectors. Plain functions that return new arrays
and never change their inputs, so each source's own score stays visible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["normalise", "rrf", "weighted_fusion"]


def rrf(ranked: Sequence[Sequence[int]], k: float = 60.0, weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal rank fusion (Cormack et al. 2009): sum of w / (k + rank)."""
    out: dict[int, float] = {}
    ws = list(weights) if weights is not None else [1.0] * len(ranked)
    for w, lst in zip(ws, ranked):
        for r, i in enumerate(lst, start=1):
            i = int(i)
            if i >= 0:
                out[i] = out.get(i, 0.0) + w / (k + r)
    return out


def normalise(scores: np.ndarray, method: str = "max") -> np.ndarray:
    """Scale one query's candidate scores: 'max' divides by the best (keeps zero as
    zero, right for BM25), 'minmax' maps to [0, 1], 'z' standardises, 'none' copies."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or method == "none":
        return s.copy()
    if method == "max":
        m = s.max()
        return s / m if m > 0 else np.zeros_like(s)
    if method == "minmax":
        lo, hi = s.min(), s.max()
        return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    if method == "z":
        sd = s.std()
        return (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    raise ValueError(f"The 'method' parameter of normalise must be one of 'max', 'minmax', 'z', 'none'. Got {method!r} instead.")


def weighted_fusion(scores: Mapping[str, np.ndarray], weights: Mapping[str, float],
                    methods: Mapping[str, str] | None = None) -> np.ndarray:
    """Weighted sum of per-source candidate score vectors (same candidate order),
    each normalised over the candidates first."""
    methods = methods or {}
    total: np.ndarray | None = None
    for name, s in scores.items():
        part = weights.get(name, 0.0) * normalise(s, methods.get(name, "max"))
        total = part if total is None else total + part
    return total if total is not None else np.zeros(0)
