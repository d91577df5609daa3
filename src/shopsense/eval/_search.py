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
import html
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import Product
from shopsense.eval._metrics import mrr, ndcg_at_k, recall_at_k

__all__ = [
    "SearchBenchmark", "default_datasets_root", "evaluate_rerank", "evaluate_retrieval",
    "latency_percentiles", "load_crowdflower", "load_homedepot", "query_split",
]

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


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


def default_datasets_root() -> Path:
    """``$SHOPSENSE_DATASETS`` or ``<repo>/../shared/datasets``."""
    import os

    env = os.environ.get("SHOPSENSE_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "datasets"


def _group(queries: Sequence[str], rows: Sequence[int], gains: Sequence[float]) -> tuple[list[str], list[dict[int, float]]]:
    order: dict[str, dict[int, float]] = {}
    for q, r, g in zip(queries, rows, gains):
        order.setdefault(q, {})[int(r)] = max(0.0, float(g))
    return list(order), list(order.values())


def load_homedepot(root: str | Path | None = None, max_products: int | None = None) -> SearchBenchmark:
    """Home Depot: 54,667 titles and 8,219 judged queries (relevance 1..3, gain = rel - 1).

    With ``max_products``, keeps the products of the first judged queries until that
    many products are reached (a small real slice whose judgments are complete).
    """
    import pandas as pd

    base = Path(root or default_datasets_root()) / "search" / "homedepot"
    prods = pd.read_csv(base / "products.csv", dtype={"product_uid": str}, encoding="utf-8")
    judg = pd.read_csv(base / "judgments.csv", dtype={"product_uid": str}, encoding="utf-8")
    judg["search_term"] = judg["search_term"].astype(str).str.strip()
    if max_products is not None:
        keep: set[str] = set()
        queries_kept = []
        for q, grp in judg.groupby("search_term", sort=False):
            ids = set(grp["product_uid"])
            if len(keep | ids) > max_products:
                break
            keep |= ids
            queries_kept.append(q)
        prods = prods[prods["product_uid"].isin(keep)]
        judg = judg[judg["search_term"].isin(set(queries_kept))]
    products = [Product(id=u, title=t) for u, t in zip(prods["product_uid"], prods["product_title"])]
    row = {p.id: i for i, p in enumerate(products)}
    judg = judg[judg["product_uid"].isin(row)]
    queries, gains = _group(judg["search_term"].tolist(), [row[u] for u in judg["product_uid"]],
                            (judg["relevance"] - 1.0).tolist())
    return SearchBenchmark("homedepot", products, queries, gains,
                           {"source": str(base), "gain": "relevance - 1"})


def _clean_html(text: str) -> str:
    # descriptions are small HTML fragments; a regex strip is enough for search text
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def load_crowdflower(root: str | Path | None = None) -> SearchBenchmark:
    """Crowdflower: 261 queries, products = distinct (title, description) pairs; gain = median - 1."""
    import pandas as pd

    base = Path(root or default_datasets_root()) / "search" / "crowdflower"
    df = pd.read_csv(base / "train.csv", encoding="utf-8")
    df["product_description"] = df["product_description"].fillna("").astype(str).map(_clean_html)
    df["product_title"] = df["product_title"].fillna("").astype(str).map(_clean_html)
    df["query"] = df["query"].astype(str).str.strip()
    keys: dict[tuple[str, str], int] = {}
    products: list[Product] = []
    rows = []
    for t, d in zip(df["product_title"], df["product_description"]):
        key = (t, d)
        if key not in keys:
            keys[key] = len(products)
            # ids are a hash of the text so they are stable across runs
            pid = "cf-" + hashlib.blake2b(f"{t}\x00{d}".encode(), digest_size=6).hexdigest()
            products.append(Product(id=pid, title=t or "(untitled)", description=d))
        rows.append(keys[key])
    queries, gains = _group(df["query"].tolist(), rows, (df["median_relevance"] - 1.0).tolist())
    return SearchBenchmark("crowdflower", products, queries, gains,
                           {"source": str(base), "gain": "median_relevance - 1"})


def query_split(queries: Sequence[str], test_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(dev, test) query positions by a stable hash of the query string."""
    h = np.array([int(hashlib.blake2b(f"{seed}:{q}".encode(), digest_size=8).hexdigest(), 16) % 10_000
                  for q in queries])
    test = h < int(test_fraction * 10_000)
    return np.flatnonzero(~test), np.flatnonzero(test)


def evaluate_retrieval(ranked: Sequence[Sequence[int]], gains: Sequence[dict[int, float]]) -> dict[str, float]:
    """Mean NDCG@10, Recall@100 and MRR of ranked product rows against graded gains."""
    nd, rc, rr = [], [], []
    for lst, g in zip(ranked, gains):
        lst = [int(i) for i in lst if int(i) >= 0]
        nd.append(ndcg_at_k(lst, g, 10))
        rc.append(recall_at_k(lst, g, 100))
        rr.append(mrr(lst, g))
    return {"ndcg@10": float(np.mean(nd)), "recall@100": float(np.mean(rc)), "mrr": float(np.mean(rr)),
            "queries": len(nd)}


def evaluate_rerank(score: Callable[[str, np.ndarray], np.ndarray], queries: Sequence[str],
                    gains: Sequence[dict[int, float]]) -> dict[str, float]:
    """NDCG@10 after ordering each query's judged products by ``score(query, rows)``.

    Ties keep the judged order shuffled by a fixed seed, so a constant scorer gets
    the random-order baseline rather than the file order.
    """
    rng = np.random.default_rng(0)
    nd = []
    for q, g in zip(queries, gains):
        rows = np.array(list(g), dtype=np.int64)
        rows = rows[rng.permutation(len(rows))]
        s = np.asarray(score(q, rows), dtype=np.float64)
        order = rows[np.argsort(-s, kind="stable")]
        nd.append(ndcg_at_k(order, g, 10))
    return {"rerank_ndcg@10": float(np.mean(nd))}


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
