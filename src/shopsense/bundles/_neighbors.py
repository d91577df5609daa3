"""Item neighbourhoods at catalogue scale, computed once per embeddings matrix.

* :func:`top_k_dense`: the top-``k`` of every row of a dense score matrix. Wide rows
  are pre-filtered by a threshold taken from a column sample (a lower bound of the
  row's ``k``-th largest value), so the selection touches a few hundred candidates
  per row instead of every column; rows with tied values fall back to
  ``numpy.argpartition``, so the result is always the one ``argpartition`` gives.
* :func:`text_knn`: the cosine k-nearest-neighbour graph of unit vectors: exact and
  blocked (``chunk`` rows x n columns at a time, memory bounded) up to
  ``exact_max_items`` items, an HNSW graph (hnswlib) above.
* :func:`kmeans_codes`: pseudo-categories; scipy's ``kmeans2`` on small catalogues,
  a BLAS k-means (k-means++ seeds and Lloyd steps on a sample, then every item
  assigned) above ``exact_max_items``, where ``kmeans2``'s quadratic seeding takes
  minutes.

A tuning loop refits the complement model many times on the same embeddings with
different hyperparameters; :data:`MEMO` keeps the last few neighbour graphs and
cluster codes keyed by a hash of the array's bytes, so they are computed once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from scipy import sparse

from shopsense.context import UserCache
from shopsense.errors import check_param
from shopsense.results import Ranked

log = logging.getLogger(__name__)

__all__ = ["MEMO", "PAIRS", "Memo", "fingerprint", "kmeans_codes", "text_knn", "top_k_dense"]

#: width of the column sample that sets the pre-filter threshold; rows narrower than
#: four times this go straight to ``argpartition`` (the filter would buy nothing)
SAMPLE = 4096


# -- exact top-k ---------------------------------------------------------------------------------
def _argtopk(S: np.ndarray, k: int, strict: bool) -> np.ndarray:
    """(b, k) column indices of the ``k`` largest entries of every row of ``S``.

    Always equal to ``np.argpartition(-S, k - 1, axis=1)[:, :k]`` as a set per row;
    with ``strict`` also in order after a stable sort by value (rows where any of
    the ``k + 1`` largest values tie are handed to ``argpartition`` itself, so the
    order of tied entries is argpartition's). Without ``strict`` only ties at the
    ``k``-th place are handed over (a set has no order).
    """
    b, n = S.shape
    sample = SAMPLE
    if k >= sample or n < 4 * sample or b == 0:
        return np.argpartition(-S, k - 1, axis=1)[:, :k]
    cols = np.linspace(0, n - 1, sample).astype(np.int64)
    # the k-th largest of a column sample is at most the row's k-th largest: every
    # entry of the row's top k is >= it
    t = np.partition(S[:, cols], sample - k, axis=1)[:, sample - k]
    usable = np.isfinite(t)
    mask = S >= t[:, None]
    mask[~usable] = False
    r, c = np.nonzero(mask)
    v = S[r, c]
    order = np.lexsort((-v, r))  # by row, then by value, largest first
    c, v = c[order], v[order]
    counts = np.bincount(r, minlength=b)
    starts = np.cumsum(counts) - counts
    good = usable & (counts > k)  # k + 1 candidates are needed to see a tie at the k-th place
    rows = np.flatnonzero(good)
    pos = starts[rows, None] + np.arange(k + 1)[None, :]
    top = v[pos]
    tie = top[:, k - 1] == top[:, k]
    if strict:
        tie |= (top[:, :-1] == top[:, 1:]).any(axis=1)
    out = np.empty((b, k), dtype=np.int64)
    out[rows] = c[pos[:, :k]]
    ref = np.concatenate([np.flatnonzero(~good), rows[tie]])
    if len(ref):
        ref.sort()
        out[ref] = np.argpartition(-S[ref], k - 1, axis=1)[:, :k]
    return out


def top_k_dense(scores: np.ndarray, k: int) -> Ranked:
    """Top-``k`` of every row of a dense score matrix, best first.

    ``-inf`` / ``nan`` entries come back as index ``-1`` with score 0, and rows are
    padded with ``-1`` when ``k`` exceeds the number of columns, so the result is
    always ``(n_rows, k)``. Exact; ties keep ``numpy.argpartition``'s order.

    Example
    -------
    >>> top_k_dense(np.array([[0.1, 0.9, -np.inf]]), k=3).indices.tolist()
    [[1, 0, -1]]
    """
    R = np.asarray(scores)
    n = R.shape[1]
    kk = min(k, n)
    part = _argtopk(R, kk, strict=True)
    vals = np.take_along_axis(R, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(vals, order, axis=1)
    bad = ~np.isfinite(sc)
    idx[bad] = -1
    sc = np.where(bad, 0.0, sc).astype(np.float32)
    if kk < k:
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, k - kk)))
    return Ranked(idx, sc)


# -- nearest neighbours ------------------------------------------------------------------------
def text_knn(emb: np.ndarray, k: int, chunk: int = 2048, *, exact_max_items: int = 50_000, M: int = 16,
             ef_construction: int = 100, ef: int = 100, threads: int | None = None,
             seed: int = 0) -> sparse.csr_matrix:
    """Cosine k-nearest-neighbour graph of unit vectors (self excluded).

    Up to ``exact_max_items`` items: exact, ``chunk`` rows against all items per
    matrix product, memory ``chunk x n``. Above: an HNSW graph (hnswlib; ``M``,
    ``ef_construction``, search breadth ``ef``, built on ``threads`` threads,
    default: as many as BLAS may use, so ``eval --threads`` bounds it too); recall
    about 0.99 on sentence embeddings at these settings; a multi-threaded build is
    not bit-reproducible. Without hnswlib the exact path
    runs (slower) and a warning gives the pip command.

    Example
    -------
    >>> v = np.eye(3, dtype=np.float32)[[0, 0, 1]] + [0, 0, 0.1]
    >>> v /= np.linalg.norm(v, axis=1, keepdims=True)
    >>> text_knn(v, 1).indices.tolist()
    [1, 0, 0]
    """
    check_param("k", k, isinstance(k, int | np.integer) and k >= 1, "an int >= 1", "text_knn")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = emb.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    if n > exact_max_items:
        try:
            import hnswlib
        except ImportError:
            log.warning("text_knn: %d items above exact_max_items=%d but hnswlib is missing (pip install "
                        "'shopsense[search]'); computing exact neighbours", n, exact_max_items)
        else:
            return _hnsw_knn(hnswlib, emb, k, M, ef_construction, ef, threads or _blas_threads(), seed)
    return _exact_knn(emb, k, chunk)


def _blas_threads() -> int:
    """The threads BLAS may use now (``threadpool_limits`` included); -1 (all) if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return -1
    n = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, min(n)) if n else -1


def _exact_knn(emb: np.ndarray, k: int, chunk: int) -> sparse.csr_matrix:
    n = emb.shape[0]
    rows, cols, vals = [], [], []
    for s in range(0, n, chunk):
        sims = emb[s:s + chunk] @ emb.T
        idx = np.arange(s, min(s + chunk, n))
        sims[idx - s, idx] = -np.inf
        part = _argtopk(sims, k, strict=False)
        rows.append(np.repeat(idx, k))
        cols.append(part.ravel())
        vals.append(np.take_along_axis(sims, part, axis=1).ravel())
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n), dtype=np.float32)


def _hnsw_knn(hnswlib: Any, emb: np.ndarray, k: int, M: int, ef_construction: int, ef: int, threads: int,
              seed: int) -> sparse.csr_matrix:
    n, d = emb.shape
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, ef_construction=ef_construction, M=M, random_seed=seed)
    index.add_items(emb, np.arange(n), num_threads=threads)
    index.set_ef(max(ef, k + 1))
    labels, dist = index.knn_query(emb, k=k + 1, num_threads=threads)
    labels = labels.astype(np.int64)
    # drop the item itself, or the farthest hit where the search missed it (exact twins)
    keep = labels != np.arange(n)[:, None]
    missed = keep.all(axis=1)
    keep[missed, k] = False
    cols = labels[keep].reshape(n, k)
    sims = (1.0 - dist[keep]).reshape(n, k).astype(np.float32)
    return sparse.csr_matrix((sims.ravel(), (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, n),
                             dtype=np.float32)


# -- pseudo-categories -------------------------------------------------------------------------
def kmeans_codes(emb: np.ndarray, n_clusters: int, seed: int = 0, *, exact_max_items: int = 10_000,
                 sample: int = 50_000, iters: int = 10) -> np.ndarray:
    """(n,) cluster codes of the rows of ``emb``.

    Up to ``exact_max_items`` rows: scipy's ``kmeans2`` (k-means++ seeds, 10 Lloyd
    steps), as always. Above, where its seeding grows as ``n * n_clusters**2``: greedy
    k-means++ seeds on 20,000 sampled rows, ``iters`` Lloyd steps on ``sample`` rows, both with
    matrix products, then every row goes to its nearest centre.
    """
    if emb.shape[0] <= exact_max_items:
        from scipy.cluster.vq import kmeans2

        rng = np.random.default_rng(seed)
        _, labels = kmeans2(emb.astype(np.float64), n_clusters, minit="++", seed=rng)
        return labels.astype(np.int64)
    return _kmeans_blas(np.asarray(emb, dtype=np.float32), n_clusters, seed, sample, iters)


def _nearest(X: np.ndarray, C: np.ndarray, block: int = 65536) -> np.ndarray:
    cc = (C * C).sum(axis=1)
    out = np.empty(len(X), dtype=np.int64)
    for s in range(0, len(X), block):
        out[s:s + block] = np.argmax(2.0 * (X[s:s + block] @ C.T) - cc[None, :], axis=1)
    return out


def _kmeans_blas(X: np.ndarray, n_clusters: int, seed: int, sample: int, iters: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(X)
    S = X[np.sort(rng.choice(n, min(n, sample), replace=False))]
    seeds = S[np.sort(rng.choice(len(S), min(len(S), 20_000), replace=False))]
    # k-means++: each next centre drawn in proportion to the squared distance to the nearest one
    xx = (seeds * seeds).sum(axis=1, dtype=np.float64)
    C = np.empty((n_clusters, X.shape[1]), dtype=np.float32)

    def dist2(c: np.ndarray) -> np.ndarray:
        return np.maximum(xx - 2.0 * (seeds @ c).astype(np.float64) + float(c @ c), 0.0)

    C[0] = seeds[rng.integers(len(seeds))]
    d2 = dist2(C[0])
    trials = 2 + int(np.log(n_clusters))  # greedy k-means++ (as scikit-learn): the best of a few draws
    for c in range(1, n_clusters):
        tot = d2.sum()
        cand = rng.choice(len(seeds), trials, p=d2 / tot) if tot > 0 else rng.integers(len(seeds), size=trials)
        options = [np.minimum(d2, dist2(seeds[j])) for j in cand]
        best = int(np.argmin([o.sum() for o in options]))
        C[c] = seeds[cand[best]]
        d2 = options[best]
    for _ in range(iters):
        lab = _nearest(S, C)
        A = sparse.csr_matrix((np.ones(len(S), np.float32), (lab, np.arange(len(S)))), shape=(n_clusters, len(S)))
        sums = np.asarray(A @ S)
        cnt = np.bincount(lab, minlength=n_clusters)
        filled = cnt > 0  # an empty cluster keeps its centre
        C[filled] = sums[filled] / cnt[filled, None]
    return _nearest(X, C)


# -- memo --------------------------------------------------------------------------------------
def fingerprint(*arrays: np.ndarray | sparse.spmatrix | None) -> tuple:
    """A hashable key for the content of arrays (shape, dtype and a hash of the bytes)."""
    key: list[Hashable] = []
    for a in arrays:
        if a is None:
            key.append(None)
            continue
        parts = [a.indptr, a.indices, a.data] if sparse.issparse(a) else [np.asarray(a)]
        h = hashlib.blake2b(digest_size=16)
        for p in parts:
            p = np.ascontiguousarray(p)
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(memoryview(p).cast("B"))
        key.append((tuple(a.shape), h.hexdigest()))
    return tuple(key)


class Memo:
    """A small least-recently-used memo of expensive, deterministic results.

    ``get(key, compute)`` returns the stored value for ``key`` or stores
    ``compute()``. Values are shared: callers must not change them. The bounded,
    thread-safe map is :class:`shopsense.context.UserCache`, the one the services keep
    their per-user state in; this adds the compute-on-miss and the hit counts.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._store: UserCache[Hashable, Any] = UserCache(size)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        value = self._store.get(key, _ABSENT)
        if value is not _ABSENT:
            self.hits += 1
            return value
        value = compute()
        self.misses += 1
        self._store[key] = value
        return value

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0


_ABSENT: Any = object()

#: neighbour graphs, cluster codes and EASE weights shared by every ComplementModel fit
MEMO = Memo()
#: co-purchase counts and pair scores (hundreds of MB at 50k items: only the last few are kept)
PAIRS = Memo(size=3)
