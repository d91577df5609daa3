"""The search evaluation protocol, shared by ``bench/search.py`` and ``shopsense eval search``.

Protocol (the standard one for these Kaggle sets, so figures compare with the issue):
- graded gains = relevance - 1 (Home Depot 1..3 -> 0..2, Crowdflower 1..4 -> 0..3);
- retrieval: NDCG@10 over the whole product set, unjudged products gain 0; the ideal
  DCG uses all judged gains of the query; Recall@100 and MRR over products with gain > 0;
- re-ranking: NDCG@10 after ordering only the judged products of each query;
- queries split into dev / test *by query string* (a stable hash), so nothing is
  tuned on the queries it is scored on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import Product
from shopsense.datasets import (
    Judgments,
    datasets_root,
    load_crowdflower_judgments,
    load_crowdflower_products,
    load_homedepot_judgments,
    load_homedepot_products,
)
from shopsense.metrics import mrr, ndcg_at_k, recall_at_k

__all__ = [
    "SearchBenchmark", "evaluate_rerank", "evaluate_retrieval", "latency_percentiles", "load_crowdflower",
    "load_homedepot", "query_split", "rerank_scores", "retrieval_scores",
]


@dataclass
class SearchBenchmark:
    """Products plus graded judgments per query, with gains keyed by product row."""

    name: str
    products: list[Product]
    queries: list[str]
    gains: list[dict[int, float]]  # per query: product row -> gain (>= 0)
    meta: dict[str, Any] = field(default_factory=dict)

    def subset(self, query_idx: Sequence[int]) -> SearchBenchmark:
        return SearchBenchmark(self.name, self.products, [self.queries[i] for i in query_idx],
                               [self.gains[i] for i in query_idx], dict(self.meta))


def _benchmark(name: str, products: list[Product], judgments: Judgments, source: Path, gain: str) -> SearchBenchmark:
    """Products plus their judgments keyed by product row; gain = relevance minus the
    dataset's lowest grade; a pair judged twice keeps its later grade (as the published
    figures were computed)."""
    index = {p.id: i for i, p in enumerate(products)}
    judged = judgments.graded(index, lowest=judgments.scale[0], duplicates="last")
    return SearchBenchmark(name, products, judged.queries, judged.gains,
                           {"source": str(source), "gain": gain})


def load_homedepot(root: str | Path | None = None, max_products: int | None = None) -> SearchBenchmark:
    """Home Depot: 54,667 titles and 8,219 judged queries (relevance 1..3, gain = rel - 1),
    read by :mod:`shopsense.datasets`.

    With ``max_products``, keeps the products of the first judged queries until that
    many products are reached (a small real slice whose judgments are complete).
    """
    root = Path(root) if root is not None else datasets_root()
    products = load_homedepot_products(root=root)
    judg = load_homedepot_judgments(root=root)
    if max_products is not None:
        groups: dict[str, set[str]] = {}
        for q, pid in zip(judg.query.tolist(), judg.product_id.tolist()):
            groups.setdefault(q, set()).add(pid)
        keep: set[str] = set()
        queries_kept: set[str] = set()
        for q, ids in groups.items():
            if len(keep | ids) > max_products:
                break
            keep |= ids
            queries_kept.add(q)
        products = [p for p in products if p.id in keep]
        judg = judg.subset(np.array([q in queries_kept for q in judg.query.tolist()], dtype=bool))
    return _benchmark("homedepot", products, judg, root / "search" / "homedepot", "relevance - 1")


def load_crowdflower(root: str | Path | None = None) -> SearchBenchmark:
    """Crowdflower: 261 queries, products = distinct (title, description) pairs (HTML
    stripped); gain = median - 1. Read by :mod:`shopsense.datasets`."""
    root = Path(root) if root is not None else datasets_root()
    return _benchmark("crowdflower", load_crowdflower_products(root=root), load_crowdflower_judgments(root=root),
                      root / "search" / "crowdflower", "median_relevance - 1")


def query_split(queries: Sequence[str], test_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(dev, test) query positions by a stable hash of the query string."""
    h = np.array([int(hashlib.blake2b(f"{seed}:{q}".encode(), digest_size=8).hexdigest(), 16) % 10_000
                  for q in queries])
    test = h < int(test_fraction * 10_000)
    return np.flatnonzero(~test), np.flatnonzero(test)


def retrieval_scores(ranked: Sequence[Sequence[int]], gains: Sequence[dict[int, float]]) -> dict[str, np.ndarray]:
    """Per-query NDCG@10, Recall@100 and MRR of ranked product rows against graded gains
    (the per-unit scores that ``shopsense eval compare`` bootstraps)."""
    nd, rc, rr = [], [], []
    for lst, g in zip(ranked, gains):
        lst = [int(i) for i in lst if int(i) >= 0]
        nd.append(ndcg_at_k(lst, g, 10))
        rc.append(recall_at_k(lst, g, 100))
        rr.append(mrr(lst, g))
    return {"ndcg@10": np.array(nd, dtype=np.float64), "recall@100": np.array(rc, dtype=np.float64),
            "mrr": np.array(rr, dtype=np.float64)}


def evaluate_retrieval(ranked: Sequence[Sequence[int]], gains: Sequence[dict[int, float]]) -> dict[str, float]:
    """Mean NDCG@10, Recall@100 and MRR of ranked product rows against graded gains."""
    per = retrieval_scores(ranked, gains)
    n = len(per["ndcg@10"])
    return {**{m: float(v.mean()) if n else 0.0 for m, v in per.items()}, "queries": n}


def rerank_scores(score: Callable[[str, np.ndarray], np.ndarray], queries: Sequence[str],
                  gains: Sequence[dict[int, float]], seed: int = 0) -> np.ndarray:
    """Per-query NDCG@10 after ordering each query's judged products by ``score(query, rows)``.

    Ties keep the judged order shuffled by ``seed``, so a constant scorer gets the
    random-order baseline rather than the file order.
    """
    rng = np.random.default_rng(seed)
    nd = []
    for q, g in zip(queries, gains):
        rows = np.array(list(g), dtype=np.int64)
        rows = rows[rng.permutation(len(rows))]
        s = np.asarray(score(q, rows), dtype=np.float64)
        order = rows[np.argsort(-s, kind="stable")]
        nd.append(ndcg_at_k(order, g, 10))
    return np.array(nd, dtype=np.float64)


def evaluate_rerank(score: Callable[[str, np.ndarray], np.ndarray], queries: Sequence[str],
                    gains: Sequence[dict[int, float]], seed: int = 0) -> dict[str, float]:
    """Mean re-rank NDCG@10 (see :func:`rerank_scores`)."""
    nd = rerank_scores(score, queries, gains, seed)
    return {"rerank_ndcg@10": float(nd.mean()) if len(nd) else 0.0}


def latency_percentiles(fn: Callable[[str], Any], queries: Sequence[str], warmup: int = 20) -> dict[str, float]:
    """p50/p95/p99 wall milliseconds of ``fn(query)`` after ``warmup`` calls, plus the
    same percentiles of the process CPU time (what the query costs when the machine is
    shared with other work; with several threads CPU time can exceed wall time)."""
    for q in queries[:warmup]:
        fn(q)
    wall, cpu = [], []
    for q in queries:
        c0, t0 = time.process_time(), time.perf_counter()
        fn(q)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    t, c = np.array(wall), np.array(cpu)
    return {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "cpu_p50_ms": float(np.percentile(c, 50)), "cpu_p95_ms": float(np.percentile(c, 95)),
            "cpu_p99_ms": float(np.percentile(c, 99)), "n": len(t)}
