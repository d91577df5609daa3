"""Collaborative filtering: EASE (closed form), item-kNN and implicit ALS."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from shopsense.errors import check_param, require
from shopsense.recommend._base import Interactions, Recommender, histories_to_csr
from shopsense.results import Ranked

log = logging.getLogger(__name__)


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): B = I - P / diag(P),
    P = (XᵀX + λI)⁻¹. Closed form, strong on catalogues up to ~30k items.

    Written by hand because it is ten lines of linear algebra; scipy does the work.
    """

    name = "ease"
    source = "cf"

    def __init__(self, l2: float = 250.0, binary: bool = True) -> None:
        check_param("l2", l2, l2 > 0, "a float > 0", "EASE")
        self.l2 = l2
        self.binary = binary

    def fit(self, data: Interactions) -> EASE:
        from scipy.linalg import lapack

        x = data.csr(binary=self.binary)
        g = (x.T @ x).toarray().astype(np.float32)
        g[np.diag_indices_from(g)] += self.l2
        # Cholesky factor + inverse from the factor (LAPACK potrf/potri): G is symmetric positive
        # definite, and this costs ~n^3 flops against ~2.3 n^3 for a general inverse; float32 is
        # accurate enough with the ridge on the diagonal and halves time and memory
        c, info = lapack.spotrf(g, lower=True, overwrite_a=True, clean=False)
        if info != 0:
            raise RuntimeError(f"EASE: Cholesky failed (info={info}); raise l2")
        p, info = lapack.spotri(c, lower=True, overwrite_c=True)
        if info != 0:
            raise RuntimeError(f"EASE: inverse failed (info={info}); raise l2")
        p = np.tril(p) + np.tril(p, -1).T
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.B_ = b.astype(np.float32)
        self.n_items_ = data.n_items
        return self

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        x = histories_to_csr(histories, self.n_items_, None if self.binary else weights)
        if self.binary:
            x.data[:] = 1.0
        return np.asarray(x @ self.B_, dtype=np.float32)

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Only the history rows and candidate columns of B are read: ``B[h][:, items]``."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        x = histories_to_csr(histories, self.n_items_, None if self.binary else weights)
        if self.binary:
            x.data[:] = 1.0
        out = np.zeros((x.shape[0], len(items)), np.float32)
        for r in range(x.shape[0]):
            lo, hi = x.indptr[r], x.indptr[r + 1]
            if lo < hi:
                out[r] = x.data[lo:hi] @ self.B_[np.ix_(x.indices[lo:hi], cols)]
        out[:, ~ok] = -np.inf
        return out

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10, *,
                      allowed: np.ndarray | None = None) -> Ranked:
        self._check_fitted()
        return self.recommend([np.array([int(i)]) for i in items], k, allowed=allowed)

    def because(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The history item with the largest learned weight ``B[h, item]`` towards each item."""
        h = np.asarray(history, np.int64)
        h = h[(h >= 0) & (h < self.n_items_)]
        items, ok, _ = self._known(items)
        out = np.full(len(items), -1, np.int64)
        if len(h) and ok.any():
            out[ok] = h[np.argmax(self.B_[np.ix_(h, items[ok])], axis=0)]
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {"B": self.B_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.B_ = arrays["B"]


class ItemKNN(Recommender):
    """Item-based kNN with cosine similarity, keeping the ``neighbors`` best per item."""

    name = "itemknn"
    source = "cf"

    def __init__(self, neighbors: int = 200, shrink: float = 10.0) -> None:
        self.neighbors = neighbors
        self.shrink = shrink

    #: up to this many items, each block of similarities is dense (the exact neighbours of the
    #: original dense fit, ties included); above it only co-occurring pairs are visited
    dense_max_items: ClassVar[int] = 30000

    def fit(self, data: Interactions) -> ItemKNN:
        """Cosine similarities in blocks of rows (never the n x n matrix at once), keeping the
        ``neighbors`` best of each row."""
        import scipy.sparse as sp

        x = data.csr(binary=True)
        n = data.n_items
        # column counts are the diagonal of XᵀX (binary): exact integers, as the dense product gives
        norms = np.sqrt(np.bincount(x.indices, minlength=n).astype(np.float32))
        xt = x.T.tocsr()
        kk = min(self.neighbors, max(n - 1, 1))
        block = max(64, (1 << 23) // max(n, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n, block):
            blk = np.arange(start, min(n, start + block))
            g = xt[blk] @ x  # (block, n) co-occurrence counts
            if n <= self.dense_max_items:
                sim = g.toarray().astype(np.float32) / (np.outer(norms[blk], norms) + self.shrink + 1e-9)
                sim[np.arange(len(blk)), blk] = 0.0
                if kk < n:
                    top = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
                    r = np.repeat(np.arange(len(blk)), kk)
                    rows.append(blk[r]); cols.append(top.ravel()); vals.append(sim[r, top.ravel()])
                else:
                    r, c = np.nonzero(sim)
                    rows.append(blk[r]); cols.append(c); vals.append(sim[r, c])
                continue
            g = g.tocsr()
            g.sum_duplicates()
            for j, item in enumerate(blk):
                lo, hi = g.indptr[j], g.indptr[j + 1]
                c = g.indices[lo:hi]
                v = g.data[lo:hi].astype(np.float32) / (norms[item] * norms[c] + self.shrink + 1e-9)
                keep = c != item
                c, v = c[keep], v[keep]
                if len(c) > kk:
                    t = np.argpartition(-v, kk - 1)[:kk]
                    c, v = c[t], v[t]
                rows.append(np.full(len(c), item)); cols.append(c); vals.append(v)
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        self.S_ = sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                                shape=(n, n), dtype=np.float32)
        self.n_items_ = n
        return self

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        x = histories_to_csr(histories, self.n_items_, weights)
        return np.asarray((x @ self.S_).toarray(), dtype=np.float32)

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Reads only the neighbour rows of the history items."""
        self._check_fitted()
        items, ok, _ = self._known(items)
        uniq, back = np.unique(items, return_inverse=True)
        x = histories_to_csr(histories, self.n_items_, weights)
        s = self.S_
        out = np.zeros((x.shape[0], len(items)), np.float32)
        for r in range(x.shape[0]):
            lo, hi = x.indptr[r], x.indptr[r + 1]
            if lo == hi or len(items) == 0:
                continue
            row, idx, val = _csr_rows(s, x.indices[lo:hi])
            val = val * x.data[lo:hi][row]
            pos = np.minimum(np.searchsorted(uniq, idx), len(uniq) - 1)
            hit = uniq[pos] == idx
            out[r] = np.bincount(pos[hit], weights=val[hit], minlength=len(uniq))[back]
        out[:, ~ok] = -np.inf
        return out

    def because(self, history: np.ndarray, items: np.ndarray, last: int = 20) -> np.ndarray:
        """The one of the last ``last`` history items with the largest similarity ``S[h, item]``
        to each item (its one-item score), read from the history's neighbour rows only."""
        self._check_fitted()
        h = np.asarray(history, np.int64)
        h = h[(h >= 0) & (h < self.n_items_)][-last:]
        items, ok, _ = self._known(items)
        out = np.full(len(items), -1, np.int64)
        if len(h) == 0 or not ok.any():
            return out
        s = self.S_
        uniq, back = np.unique(items[ok], return_inverse=True)
        row, idx, val = _csr_rows(s, h)
        pos = np.minimum(np.searchsorted(uniq, idx), len(uniq) - 1)
        hit = uniq[pos] == idx
        sim = np.zeros((len(h), len(uniq)))
        sim[row[hit], pos[hit]] = val[hit].astype(np.float64)
        out[ok] = h[np.argmax(sim[:, back], axis=0)]
        return out

    def _state(self) -> dict[str, np.ndarray]:
        s = self.S_.tocsr()
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        import scipy.sparse as sp

        self.S_ = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                shape=(self.n_items_, self.n_items_))


def _csr_rows(m: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries of ``rows`` of a CSR matrix as (position in ``rows``, column, value),
    gathered in one vectorised step (no Python loop over the rows)."""
    starts, ends = np.asarray(m.indptr[rows], np.int64), np.asarray(m.indptr[rows + 1], np.int64)
    lens = ends - starts
    pos = np.repeat(np.arange(len(rows)), lens)
    offs = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return pos, np.asarray(m.indices[offs]), np.asarray(m.data[offs])


class ALS(Recommender):
    """Implicit-feedback matrix factorisation from the ``implicit`` library (Hu et al. 2008).

    Users are always folded in from their history (one exact least-squares step
    against the item factors), so a known user, a new user and a user with new
    events are scored the same way.
    """

    name = "als"
    source = "cf"

    def __init__(self, factors: int = 128, regularization: float = 0.05, alpha: float = 40.0,
                 iterations: int = 15, binary: bool = True, num_threads: int = 2, random_state: int = 0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.binary = binary
        self.num_threads = num_threads
        self.random_state = random_state

    def _model(self):  # type: ignore[no-untyped-def]
        require("implicit", "recommend")
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, num_threads=self.num_threads, random_state=self.random_state,
        )

    def fit(self, data: Interactions) -> ALS:
        from threadpoolctl import threadpool_limits

        m = self._model()
        # implicit parallelises itself; a BLAS thread pool on top only oversubscribes the CPU
        with threadpool_limits(1, "blas"):
            m.fit(data.csr(binary=self.binary), show_progress=False)
        # only the item factors are kept: users are always folded in from their history, so the
        # model holds no per-user state (nothing to forget when a user is deleted)
        self.item_factors_ = np.asarray(m.item_factors, np.float32)
        self._yty = None
        self._m_inv = None
        self.n_items_ = data.n_items
        return self

    def user_factors(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Exact fold-in, the least-squares step ALS itself uses for users (Hu et al. eq. 4).

        Done here in NumPy rather than with ``implicit``'s ``recalculate_user`` because that one
        recomputes YᵀY and starts a thread pool on every call: ~100 ms per request on a busy CPU
        against well under a millisecond for one small solve."""
        x = histories_to_csr(histories, self.n_items_, None if self.binary else weights)
        if self.binary:
            x.data[:] = 1.0
        y = self.item_factors_
        if getattr(self, "_yty", None) is None:
            self._yty = (y.T @ y).astype(np.float64) + self.regularization * np.eye(y.shape[1])
        out = np.zeros((x.shape[0], y.shape[1]), np.float32)
        for r in range(x.shape[0]):
            lo, hi = x.indptr[r], x.indptr[r + 1]
            if lo == hi:
                continue
            yi = y[x.indices[lo:hi]].astype(np.float64)
            conf = self.alpha * x.data[lo:hi].astype(np.float64)
            a = self._yty + (yi.T * (conf - 1.0)) @ yi
            out[r] = np.linalg.solve(a, yi.T @ conf)
        return out

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        return self.user_factors(histories, weights) @ self.item_factors_.T

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The folded-in user factor against the candidates' factors only."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        out = self.user_factors(histories, weights) @ self.item_factors_[cols].T
        out[:, ~ok] = -np.inf
        return out.astype(np.float32, copy=False)

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10, *,
                      allowed: np.ndarray | None = None) -> Ranked:
        self._check_fitted()
        from shopsense.recommend._base import mask_scores, top_k

        f = self.item_factors_ / (np.linalg.norm(self.item_factors_, axis=1, keepdims=True) + 1e-9)
        items = np.asarray(items, np.int64)
        s = f[items] @ f.T
        mask_scores(s, [np.array([i]) for i in items], allowed)
        return top_k(s, k)

    def because(self, history: np.ndarray, items: np.ndarray, last: int = 20) -> np.ndarray:
        """The one of the last ``last`` history items whose one-item fold-in scores each item
        highest. A one-item history folds in to ``c M⁻¹y / (1 + (c-1) yᵀM⁻¹y)`` (Sherman-Morrison,
        M = YᵀY + λI, c = alpha), so one f x f inverse serves every item: no solve per item."""
        self._check_fitted()
        h = np.asarray(history, np.int64)
        h = h[(h >= 0) & (h < self.n_items_)][-last:]
        items, ok, _ = self._known(items)
        out = np.full(len(items), -1, np.int64)
        if len(h) == 0 or not ok.any():
            return out
        if getattr(self, "_m_inv", None) is None:
            self.user_factors([np.zeros(0, np.int64)])  # sets YᵀY + λI
            self._m_inv = np.linalg.inv(self._yty)
        yh = self.item_factors_[h].astype(np.float64)
        z = yh @ self._m_inv
        c = self.alpha
        scale = c / (1.0 + (c - 1.0) * np.einsum("ij,ij->i", z, yh))
        s = scale[:, None] * (z @ self.item_factors_[items[ok]].T.astype(np.float64))
        out[ok] = h[np.argmax(s, axis=0)]
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors_ = arrays["item_factors"]
        self._yty = None
        self._m_inv = None
