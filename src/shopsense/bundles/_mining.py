"""Co-purchase mining: baskets as a sparse (baskets x items) matrix, pair counts
from one sparse product, support / confidence / lift without Python loops over pairs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from shopsense.errors import NotFittedError, check_param

log = logging.getLogger(__name__)

__all__ = ["BASKET_EVENT_TYPES", "Baskets", "CoPurchase", "basket_matrix", "baskets_from_events",
           "decay_weights"]

#: event types that put an item in a basket (views and clicks are interest, not purchase)
BASKET_EVENT_TYPES: tuple[str, ...] = ("add_to_cart", "purchase")


@dataclass(frozen=True)
class Baskets:
    """Baskets as a binary CSR matrix plus one time and one owner per basket."""

    matrix: sparse.csr_matrix  # (n_baskets, n_items) float32 0/1
    time: np.ndarray  # float64 epoch seconds (latest event of the basket)
    user: np.ndarray  # object: the user each basket belongs to ('' when unknown)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def drop(self, keep: np.ndarray) -> Baskets:
        return Baskets(self.matrix[keep], self.time[keep], self.user[keep])


def basket_matrix(baskets: Sequence[Sequence[int]] | Sequence[np.ndarray], n_items: int) -> sparse.csr_matrix:
    """Binary CSR matrix of item-index lists (duplicates inside a basket count once)."""
    lengths = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    cols = (np.concatenate([np.asarray(b, dtype=np.int64) for b in baskets]) if len(baskets)
            else np.zeros(0, dtype=np.int64))
    if len(cols) and (cols.min() < 0 or cols.max() >= n_items):
        raise ValueError(f"item indices must lie in [0, {n_items}); got {cols.min()}..{cols.max()}")
    rows = np.repeat(np.arange(len(baskets)), lengths)
    m = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                          shape=(len(baskets), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def baskets_from_events(user_id: np.ndarray, item_id: np.ndarray, type_: np.ndarray, timestamp: np.ndarray,
                        session_id: np.ndarray, index: dict[str, int],
                        types: Sequence[str] = BASKET_EVENT_TYPES) -> Baskets:
    """Group add-to-cart / purchase events into baskets.

    A basket is one ``session_id``; events without a session fall back to the
    user's calendar day (UTC), the usual proxy for one order. Items not in
    ``index`` (deleted products) are skipped.
    """
    n_items = len(index)
    keep = np.isin(type_.astype(str), list(types))
    items = np.array([index.get(i, -1) if i is not None else -1 for i in item_id[keep]], dtype=np.int64)
    users = np.array(["" if u is None else str(u) for u in user_id[keep]], dtype=object)
    ts = timestamp[keep].astype(np.float64)
    sess = session_id[keep]
    day = (ts // 86400).astype(np.int64)
    keys = np.array([f"s:{s}" if s else f"u:{u}:{d}" for s, u, d in zip(sess, users, day)], dtype=object)
    ok = items >= 0
    items, users, ts, keys = items[ok], users[ok], ts[ok], keys[ok]
    if len(items) == 0:
        return Baskets(sparse.csr_matrix((0, n_items), dtype=np.float32), np.zeros(0), np.zeros(0, dtype=object))
    uniq, rows = np.unique(keys, return_inverse=True)
    m = sparse.csr_matrix((np.ones(len(items), dtype=np.float32), (rows, items)), shape=(len(uniq), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    btime = np.zeros(len(uniq))
    np.maximum.at(btime, rows, ts)
    # the owner of a basket is the user of its first event (a session has one user)
    first = np.full(len(uniq), -1, dtype=np.int64)
    order = np.arange(len(rows))[::-1]
    first[rows[order]] = order
    return Baskets(m, btime, users[first])


def decay_weights(times: np.ndarray, half_life_days: float | None, now: float | None = None) -> np.ndarray:
    """Exponential time decay: a basket ``half_life_days`` old counts half."""
    times = np.asarray(times, dtype=np.float64)
    if half_life_days is None or len(times) == 0:
        return np.ones(len(times), dtype=np.float64)
    check_param("half_life_days", half_life_days, half_life_days > 0, "a float > 0 or None", "decay_weights")
    ref = float(times.max()) if now is None else float(now)
    age_days = np.maximum(ref - times, 0.0) / 86400.0
    return np.power(0.5, age_days / half_life_days)


def _supported_pairs(raw: sparse.csr_matrix, min_support: float) -> sparse.csr_matrix:
    """The off-diagonal entries of ``raw`` that are at least ``min_support``, sorted by column.

    One pass over the stored entries: ``setdiag(0)`` on a CSR matrix whose diagonal
    has holes (items never bought) rebuilds it, which took longer than the pair
    product itself at 200,000 items.
    """
    n = raw.shape[0]
    rows = np.repeat(np.arange(n), np.diff(raw.indptr))
    sel = (rows != raw.indices) & (raw.data >= min_support)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[sel], minlength=n), out=indptr[1:])
    out = sparse.csr_matrix((raw.data[sel], raw.indices[sel], indptr), shape=raw.shape)
    out.sort_indices()
    return out


class CoPurchase:
    """Pair statistics of items bought together.

    ``pair_counts_[i, j]`` is the (optionally time-decayed) number of baskets with
    both items; pairs seen in fewer than ``min_support`` baskets (raw count) are
    dropped. Support, confidence and lift follow the association-rule definitions:
    ``support(i,j) = n_ij / N``, ``confidence(i->j) = n_ij / n_i``,
    ``lift(i,j) = n_ij * N / (n_i * n_j)``.

    Example
    -------
    >>> X = basket_matrix([[0, 1], [0, 1, 2], [2]], n_items=3)
    >>> cp = CoPurchase(min_support=2).fit(X)
    >>> float(cp.lift(0, 1)), float(cp.confidence(0, 1))
    (1.5, 1.0)
    """

    def __init__(self, min_support: int = 2) -> None:
        check_param("min_support", min_support, isinstance(min_support, int) and min_support >= 1,
                    "an int >= 1", "CoPurchase")
        self.min_support = min_support

    def fit(self, X: sparse.spmatrix, weights: np.ndarray | None = None) -> CoPurchase:
        X = sparse.csr_matrix(X, dtype=np.float32)
        n_b, n = X.shape
        raw = (X.T @ X).tocsr()
        if weights is None:
            w_counts = raw
            wsum = float(n_b)
        else:
            w = np.asarray(weights, dtype=np.float32)
            if w.shape != (n_b,):
                raise ValueError(f"weights must have shape ({n_b},); got {w.shape}")
            w_counts = (X.T @ sparse.diags(w) @ X).tocsr()
            wsum = float(w.sum())
        self.item_counts_ = np.asarray(raw.diagonal(), dtype=np.float64)
        self.item_weights_ = np.asarray(w_counts.diagonal(), dtype=np.float64)
        # keep the pairs with enough raw support; the same mask applies to the decayed counts
        keep = _supported_pairs(raw, self.min_support)
        if weights is None:
            pc = keep
        else:
            keep.data[:] = 1.0
            pc = w_counts.multiply(keep).tocsr()
            pc.eliminate_zeros()
        self.pair_counts_ = pc.astype(np.float64)
        self._lift: sparse.csr_matrix | None = None
        self.n_baskets_ = n_b
        self.total_weight_ = max(wsum, 1e-12)
        self.n_items_ = n
        log.info("co-purchase: %d baskets, %d items, %d pairs >= support %d", n_b, n,
                 self.pair_counts_.nnz // 2, self.min_support)
        return self

    def _check(self) -> None:
        if not hasattr(self, "pair_counts_"):
            raise NotFittedError("CoPurchase is not fitted; call fit(baskets) first.")

    def support(self, i: int, j: int) -> float:
        self._check()
        return float(self.pair_counts_[i, j]) / self.total_weight_

    def confidence(self, i: int, j: int) -> float:
        self._check()
        return float(self.pair_counts_[i, j]) / max(self.item_weights_[i], 1e-12)

    def lift(self, i: int, j: int) -> float:
        self._check()
        den = self.item_weights_[i] * self.item_weights_[j]
        return float(self.pair_counts_[i, j]) * self.total_weight_ / den if den > 0 else 0.0

    def lift_matrix(self) -> sparse.csr_matrix:
        """Lift of every kept pair (sparse, same pattern as ``pair_counts_``; computed
        once per fit, callers must not change it)."""
        self._check()
        if getattr(self, "_lift", None) is None:
            inv = 1.0 / np.maximum(self.item_weights_, 1e-12)
            self._lift = (sparse.diags(inv) @ self.pair_counts_ @ sparse.diags(inv) * self.total_weight_).tocsr()
        return self._lift

    def confidence_matrix(self) -> sparse.csr_matrix:
        """``confidence(i -> j)`` for every kept pair (rows are antecedents)."""
        self._check()
        inv = 1.0 / np.maximum(self.item_weights_, 1e-12)
        return (sparse.diags(inv) @ self.pair_counts_).tocsr()

    def top(self, i: int, k: int = 10, metric: str = "lift") -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` partners of item ``i`` by ``metric`` (count, confidence or lift)."""
        self._check()
        check_param("metric", metric, metric in ("count", "confidence", "lift"),
                    "one of 'count', 'confidence', 'lift'", "CoPurchase.top")
        row = self.pair_counts_.getrow(i)
        idx, vals = row.indices, row.data.astype(np.float64)
        if metric == "confidence":
            vals = vals / max(self.item_weights_[i], 1e-12)
        elif metric == "lift":
            vals = vals * self.total_weight_ / np.maximum(self.item_weights_[i] * self.item_weights_[idx], 1e-12)
        order = np.argsort(-vals, kind="stable")[:k]
        return idx[order].astype(np.int64), vals[order]
