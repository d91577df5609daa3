"""Dense retrieval: an HNSW index (hnswlib) over unit item vectors, with exact
search (one matrix product) as the reference and the fallback for filtered queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shopsense.errors import NotFittedError, require

__all__ = ["DenseIndex"]


class DenseIndex:
    """Inner-product search over L2-normalised vectors (so scores are cosines).

    Parameters
    ----------
    M, ef_construction: HNSW graph parameters.
    ef: search breadth; raised to ``k`` when a query asks for more.
    exact_below: catalogues smaller than this use exact search only (HNSW buys
        nothing there and exact is the reference).
    """

    def __init__(self, M: int = 16, ef_construction: int = 100, ef: int = 100, exact_below: int = 5000,
                 threads: int = 2) -> None:
        self.M = M
        self.ef_construction = ef_construction
        self.ef = ef
        self.exact_below = exact_below
        self.threads = threads
        self.vectors_: np.ndarray | None = None
        self.hnsw_: object | None = None

    def fit(self, vectors: np.ndarray) -> DenseIndex:
        self.vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
        self.hnsw_ = None
        n, d = self.vectors_.shape
        if n >= self.exact_below:
            hnswlib = require("hnswlib", "search")
            idx = hnswlib.Index(space="ip", dim=d)
            idx.init_index(max_elements=n, ef_construction=self.ef_construction, M=self.M, random_seed=0)
            idx.set_num_threads(self.threads)  # building may use both cores; queries use one
            idx.add_items(self.vectors_, np.arange(n))
            idx.set_num_threads(1)
            idx.set_ef(self.ef)
            self.hnsw_ = idx
        return self

    def _vecs(self) -> np.ndarray:
        if self.vectors_ is None:
            raise NotFittedError("DenseIndex is not fitted; call fit() or load().")
        return self.vectors_

    def scores_for(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine of one query vector with the given rows."""
        return self._vecs()[rows] @ query.astype(np.float32)

    def exact_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (rows, scores) by brute force; ``allowed`` is an optional bool mask."""
        v = self._vecs()
        s = v @ query.astype(np.float32)
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
            k = min(k, int(allowed.sum()))
        k = min(k, len(s))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return top.astype(np.int64), s[top].astype(np.float32)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k``; exact when filtered (HNSW recall collapses under
        selective filters) or when the catalogue is small."""
        v = self._vecs()
        if self.hnsw_ is None or (allowed is not None and not allowed.all()):
            return self.exact_search(query, k, allowed)
        k = min(k, len(v))
        idx = self.hnsw_
        idx.set_ef(max(self.ef, k))  # type: ignore[attr-defined]
        labels, dist = idx.knn_query(query.reshape(1, -1).astype(np.float32), k=k)  # type: ignore[attr-defined]
        return labels[0].astype(np.int64), (1.0 - dist[0]).astype(np.float32)

    def save(self, path: str | Path) -> None:
        v = self._vecs()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "vectors.npy", v)
        if self.hnsw_ is not None:
            self.hnsw_.save_index(str(path / "hnsw.bin"))  # type: ignore[attr-defined]
        (path / "dense.json").write_text(json.dumps({
            "format": "shopsense.dense/1", "M": self.M, "ef_construction": self.ef_construction, "ef": self.ef,
            "exact_below": self.exact_below, "n": int(v.shape[0]), "dim": int(v.shape[1]),
            "hnsw": self.hnsw_ is not None,
        }))

    @classmethod
    def load(cls, path: str | Path) -> DenseIndex:
        path = Path(path)
        meta = json.loads((path / "dense.json").read_text())
        self = cls(M=meta["M"], ef_construction=meta["ef_construction"], ef=meta["ef"], exact_below=meta["exact_below"])
        # memory-mapped, read-only: the server's workers share one copy in the page cache (a plain
        # ndarray view of the map: np.memmap's per-slice wrapping cost ~4% of a search)
        self.vectors_ = np.load(path / "vectors.npy", allow_pickle=False, mmap_mode="r").view(np.ndarray)
        if meta["hnsw"]:
            hnswlib = require("hnswlib", "search")
            idx = hnswlib.Index(space="ip", dim=meta["dim"])
            idx.load_index(str(path / "hnsw.bin"), max_elements=meta["n"])
            idx.set_ef(meta["ef"])
            idx.set_num_threads(1)
            self.hnsw_ = idx
        return self
