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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import Product
from shopsense.errors import ValidationError
from shopsense.metrics import mrr, ndcg_at_k, recall_at_k

__all__ = [
    "JUDGMENT_FIELDS", "PRODUCT_ALIASES", "Judgments", "SearchBenchmark", "default_datasets_root", "evaluate_rerank",
    "evaluate_retrieval", "latency_percentiles", "load_crowdflower", "load_homedepot", "product_mapping",
    "query_split", "read_judgments", "rerank_scores", "retrieval_scores",
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


# -- a shop's own files ---------------------------------------------------------------

#: judgment fields and the column names accepted for each without a mapping (in order)
JUDGMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "query": ("query", "search_term"),
    "product_id": ("product_id", "product_uid", "item_id"),
    "relevance": ("relevance", "median_relevance", "grade", "label"),
}

#: product fields a file may name differently; used only when the file has no column
#: of that name and no ``--map`` targets it (Home Depot: product_uid, product_title)
PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("product_id", "product_uid", "item_id"),
    "title": ("product_title", "product_name", "name"),
}


@dataclass
class Judgments:
    """Graded judgments keyed by catalogue row; ``report`` says what was read and skipped."""

    queries: list[str]
    gains: list[dict[int, float]]
    report: dict[str, Any]


def _file_header(path: Path, fmt: str) -> list[str]:
    import csv
    import json

    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            delim = "\t" if sample.count("\t") > sample.count(",") else ","
            for row in csv.reader(fh, delimiter=delim):
                if any(c.strip() for c in row):
                    return [c.strip() for c in row]
        return []
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        return []  # the ingest reports the bad line itself
                    return list(obj) if isinstance(obj, dict) else []
        return []
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def product_mapping(path: str | Path, mapping: dict[str, str] | None = None, fmt: str | None = None) -> dict[str, str]:
    """The ``column=field`` mapping for a products file: ``mapping`` plus, for ``id``
    and ``title`` when the file has no such column and nothing maps to them, the first
    column of :data:`PRODUCT_ALIASES` the file has (so Home Depot's ``product_uid`` and
    ``product_title`` work without flags). The result is reported, never hidden."""
    from shopsense.catalog._ingest import detect_format

    path = Path(path)
    if not path.exists():
        raise ValidationError(f"No such products file: {str(path)!r}.", field="products")
    out = dict(mapping or {})
    header = _file_header(path, detect_format(path, fmt))
    targets = set(out.values())
    for fld, aliases in PRODUCT_ALIASES.items():
        if fld in header or fld in targets:
            continue
        col = next((c for c in aliases if c in header and c not in out), None)
        if col is not None:
            out[col] = fld
    return out


def read_judgments(path: str | Path, index: Mapping[str, int], mapping: Mapping[str, str] | None = None) -> Judgments:
    """Read a CSV (or TSV) of (query, product id, graded relevance) rows.

    Columns are found by ``mapping`` (``{column: field}`` with fields ``query``,
    ``product_id``, ``relevance``) or else by the names in :data:`JUDGMENT_FIELDS`.
    Gains are relevance minus the lowest grade in the file. Malformed rows (wrong
    number of cells, empty query or id, a relevance that is not a finite number) raise
    :class:`~shopsense.errors.ValidationError` naming the file, line and column;
    blank lines, rows whose product id is not in ``index`` and queries left with no
    known product are skipped and counted in ``report``. A (query, product) pair
    judged twice gets the mean of its grades (counted too).
    """
    import csv
    import math

    path = Path(path)
    if not path.exists():
        raise ValidationError(f"No such judgments file: {str(path)!r}.", field="judgments")
    mapping = dict(mapping or {})
    for col, fld in mapping.items():
        if fld not in JUDGMENT_FIELDS:
            raise ValidationError(f"The judgment mapping {col}={fld} names no judgment field; allowed: "
                                  f"{', '.join(JUDGMENT_FIELDS)}.", field="judgment_map")
    name = path.name
    grades: dict[str, dict[str, list[float]]] = {}
    first_line: dict[tuple[str, str], int] = {}
    blank = rows = 0
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delim = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(fh, delimiter=delim)
        header: list[str] | None = None
        cols: dict[str, int] = {}
        try:
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    blank += header is not None
                    continue
                if header is None:
                    header = [c.strip() for c in row]
                    cols = _judgment_columns(name, header, mapping)
                    continue
                if len(row) != len(header):
                    raise ValidationError(f"{name}, line {line}: {len(row)} cells but the header has "
                                          f"{len(header)}.", field="judgments")
                q = row[cols["query"]].strip()  # as the bundled loaders: the split hashes this string
                pid = row[cols["product_id"]].strip()
                raw = row[cols["relevance"]].strip()
                for fld, v in (("query", q), ("product_id", pid), ("relevance", raw)):
                    if not v:
                        raise ValidationError(f"{name}, line {line}, column {header[cols[fld]]!r}: empty {fld}.",
                                              field=fld)
                try:
                    rel = float(raw)
                except ValueError:
                    rel = math.nan
                if not math.isfinite(rel):
                    raise ValidationError(f"{name}, line {line}, column {header[cols['relevance']]!r}: "
                                          f"{raw!r} is not a number.", field="relevance")
                grades.setdefault(q, {}).setdefault(pid, []).append(rel)
                first_line.setdefault((q, pid), line)
                rows += 1
        except csv.Error as exc:
            raise ValidationError(f"{name}, line {reader.line_num}: unreadable CSV ({exc}).",
                                  field="judgments") from None
    if header is None:
        raise ValidationError(f"{name}: the judgments file is empty.", field="judgments")
    if not rows:
        raise ValidationError(f"{name}: no judgment rows after the header.", field="judgments")
    lowest = min(min(g) for per in grades.values() for g in per.values())
    highest = max(max(g) for per in grades.values() for g in per.values())
    queries: list[str] = []
    gains: list[dict[int, float]] = []
    unknown_rows = dup_pairs = skipped_queries = no_relevant = 0
    unknown_examples: list[str] = []
    for q, per in grades.items():
        g: dict[int, float] = {}
        for pid, rels in per.items():
            dup_pairs += len(rels) - 1
            r = index.get(pid)
            if r is None:
                unknown_rows += len(rels)
                if len(unknown_examples) < 5:
                    unknown_examples.append(f"line {first_line[(q, pid)]}: {pid!r}")
                continue
            g[int(r)] = float(np.mean(rels)) - lowest
        if not g:
            skipped_queries += 1
            continue
        no_relevant += max(g.values()) <= 0
        queries.append(q)
        gains.append(g)
    if not queries:
        raise ValidationError(f"{name}: none of the {len(grades):,} queries judges a product of the catalogue "
                              f"(first unknown ids: {', '.join(unknown_examples)}); check the product id "
                              "column and the products file.", field="judgments")
    report = {
        "file": str(path), "columns": {f: header[i] for f, i in cols.items()}, "rows": rows,
        "blank_lines_skipped": blank, "duplicate_pairs_averaged": dup_pairs,
        "rows_unknown_product_skipped": unknown_rows, "unknown_product_examples": unknown_examples,
        "queries": len(queries), "queries_skipped_no_known_product": skipped_queries,
        "queries_without_relevant_product": no_relevant, "lowest_grade": lowest, "highest_grade": highest,
        "gain": f"relevance - {lowest:g}",
    }
    return Judgments(queries, gains, report)


def _judgment_columns(name: str, header: list[str], mapping: Mapping[str, str]) -> dict[str, int]:
    cols: dict[str, int] = {}
    for col, fld in mapping.items():
        if col not in header:
            raise ValidationError(f"{name}, line 1: the judgment mapping {col}={fld} names no column; "
                                  f"columns: {header}.", field="judgment_map")
        cols[fld] = header.index(col)
    for fld, aliases in JUDGMENT_FIELDS.items():
        if fld in cols:
            continue
        col = next((c for c in aliases if c in header), None)
        if col is None:
            raise ValidationError(
                f"{name}, line 1: no {fld} column (looked for {', '.join(aliases)}); columns: {header}. "
                f"Name it with --judgment-map COLUMN={fld}.", field=fld)
        cols[fld] = header.index(col)
    return cols
