"""The search systems and how they are run, shared by ``bench/search.py`` and
``shopsense eval search`` so there is one implementation of the protocol in
:mod:`shopsense.eval._search`:

- the plain bm25s peer (default tokenizer, default BM25), measured in the same run;
- our systems: field-weighted BM25, with query understanding, dense only, hybrid with
  RRF, weighted hybrid, hybrid + query understanding, and the same dense and hybrid
  with a tuned encoder when one is given;
- fusion weights tuned on the *dev* queries only, figures on the *test* queries;
- per-query scores kept for ``shopsense eval compare``, latency of the full
  ``search()`` call, one table and one plot.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.datasets import product_mapping, read_judgments
from shopsense.errors import ValidationError
from shopsense.eval._progress import Phases, RichPhases
from shopsense.eval._search import (
    SearchBenchmark,
    evaluate_retrieval,
    latency_percentiles,
    query_split,
    rerank_scores,
    retrieval_scores,
)

__all__ = [
    "PEER", "PROTOCOL", "SYSTEM_KEYS", "Peer", "SearchRun", "System", "eval_search_files", "evaluate", "latency",
    "open_search", "plot", "print_search_table", "run_protocol", "select_systems", "systems", "tune",
    "warm_queries",
]

log = logging.getLogger(__name__)

PEER = "bm25s defaults (peer)"

PROTOCOL = ("NDCG@10 with gains relevance minus the lowest grade; retrieval over all products (unjudged = 0, "
            "ideal DCG from all judged gains), Recall@100, MRR (gain > 0 relevant); re-rank NDCG@10 over each "
            "query's judged products; queries split into dev/test by a hash of the query string, fusion weights "
            "tuned on dev only, figures on test. Latency: full search() incl. query encoding (query cache off), "
            "after 20 warm-up queries; wall ms and process CPU ms.")

#: short keys for ``--systems``, in report order
SYSTEM_KEYS: dict[str, str] = {
    "peer": PEER,
    "bm25": "bm25 (ours)",
    "bm25-qu": "bm25 + query understanding",
    "dense": "dense ({label})",
    "hybrid-rrf": "hybrid rrf",
    "hybrid-weighted": "hybrid weighted",
    "hybrid-qu": "hybrid + query understanding",
    "dense-tuned": "dense (tuned)",
    "hybrid-qu-tuned": "hybrid + query understanding (tuned)",
}
_DENSE_KEYS = {"dense", "hybrid-rrf", "hybrid-weighted", "hybrid-qu", "dense-tuned", "hybrid-qu-tuned"}
_TUNED_KEYS = {"dense-tuned", "hybrid-qu-tuned"}


class Peer:
    """bm25s exactly as a newcomer would use it: default tokenizer, default BM25."""

    def __init__(self, products: Sequence[Any]) -> None:
        from shopsense.search import import_bm25s

        bm25s = import_bm25s()

        self.bm25s = bm25s
        self.r = bm25s.BM25()
        self.r.index(bm25s.tokenize([p.text() for p in products], show_progress=False), show_progress=False)

    def _tokens(self, q: str) -> list[str]:
        # the same default tokenisation bm25s applies to queries, as strings for get_scores
        return self.bm25s.tokenize([q], show_progress=False, return_ids=False)[0]

    def _scores(self, q: str) -> np.ndarray:
        toks = self._tokens(q)
        return self.r.get_scores(toks) if toks else np.zeros(self.r.scores["num_docs"], dtype=np.float32)

    def rank(self, q: str, k: int = 100) -> np.ndarray:
        s = self._scores(q)
        # argpartition at k (not k - 1) as the published figures were measured: ties at
        # the cut-off fall the same way
        top = np.argpartition(-s, k)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.argsort(-s[top], kind="stable")]
        return top[s[top] > 0]

    def score(self, q: str, rows: np.ndarray) -> np.ndarray:
        return self._scores(q)[rows]


@dataclass(frozen=True)
class System:
    """One evaluated system: ``options`` is ``None`` for the peer; ``tuned`` systems run
    on the searcher with the tuned encoder."""

    key: str
    name: str
    options: Any = None
    tuned: bool = False

    @property
    def dense(self) -> bool:
        return self.key in _DENSE_KEYS


def _option_sets(base: Any) -> dict[str, Any]:
    return {
        "bm25": replace(base, mode="bm25", understand=False),
        "bm25-qu": replace(base, mode="bm25", understand=True),
        "dense": replace(base, mode="dense", understand=False),
        "hybrid-rrf": replace(base, mode="hybrid", fusion="rrf", understand=False),
        "hybrid-weighted": replace(base, mode="hybrid", fusion="weighted", understand=False),
        "hybrid-qu": replace(base, mode="hybrid", fusion="weighted", understand=True),
        "dense-tuned": replace(base, mode="dense", understand=False),
        "hybrid-qu-tuned": replace(base, mode="hybrid", fusion="weighted", understand=True),
    }


def select_systems(keys: Iterable[str], base: Any, tuned_base: Any = None, dense_label: str = "MiniLM") -> list[System]:
    """The :class:`System` list for ``keys`` (see :data:`SYSTEM_KEYS`), in report order;
    ``tuned_base`` gives the fusion options of the tuned-encoder systems."""
    keys = set(keys)
    bad = sorted(keys - set(SYSTEM_KEYS))
    if bad:
        raise ValidationError(f"Unknown search system {bad[0]!r}; allowed: {', '.join(SYSTEM_KEYS)}.", field="systems")
    opts = _option_sets(base)
    tuned_opts = _option_sets(tuned_base if tuned_base is not None else base)
    out = []
    for key, name in SYSTEM_KEYS.items():
        if key not in keys:
            continue
        if key == "peer":
            out.append(System(key, name))
        else:
            tuned = key in _TUNED_KEYS
            out.append(System(key, name.format(label=dense_label), (tuned_opts if tuned else opts)[key], tuned))
    return out


def systems(base: Any, dense: bool = True) -> dict[str, Any]:
    """Our systems (not the peer) as ``{name: SearchOptions}``; lexical ones only without ``dense``."""
    keys = [k for k in SYSTEM_KEYS if k != "peer" and k not in _TUNED_KEYS and (dense or k not in _DENSE_KEYS)]
    return {s.name: s.options for s in select_systems(keys, base)}


# -- progress -------------------------------------------------------------------------

def _steps(phases: Phases | None, items: Sequence[Any], label: str) -> Iterator[Any]:
    """Iterate ``items`` as one phase of ``phases`` (a bar with :class:`RichPhases`, silent without)."""
    with (phases or Phases()).phase(label, total=len(items)) as update:
        for done, x in enumerate(items, 1):
            yield x
            update(done)


# -- the phases -------------------------------------------------------------------------

def warm_queries(searcher: Any, queries: Sequence[str], understand: bool = True,
                 phases: Phases | None = None) -> None:
    """Encode every query text once in batches (the encoder's LRU cache then serves
    them), so the quality runs do not pay one forward pass per query and system.

    The vectors are the ones a search gets: made by the encoder that encodes queries
    (``query_encoder`` when set, e.g. the int8 export beside a PyTorch model), and one
    text at a time when that encoder's vectors depend on the batch (``batch_dependent``:
    int8 ONNX, whose activation scales are taken over the whole padded batch; a batched
    query vector had cosine 0.994-0.997 to the one a search computes)."""
    enc = searcher.encoder
    if enc is None or not hasattr(enc, "_qcache"):
        return
    q_enc = getattr(enc, "query_encoder", None) or enc
    single = bool(getattr(q_enc, "batch_dependent", False))
    enc.query_cache_size = max(enc.query_cache_size, 4 * len(queries) + 10)
    texts = set()
    for q in queries:
        texts.add(searcher.parse(q, False).text)
        if understand:
            texts.add(searcher.parse(q, True).text)
    ordered = sorted(t for t in texts if t and t not in enc._qcache)  # a second call encodes only new texts
    chunks = [ordered[i:i + 512] for i in range(0, len(ordered), 512)]
    for chunk in _steps(phases, chunks, "encode queries"):
        vecs = np.stack([q_enc.encode_documents([t])[0] for t in chunk]) if single else q_enc.encode_documents(chunk)
        for t, v in zip(chunk, vecs):
            enc._qcache[t] = v


def tune(searcher: Any, bench: SearchBenchmark, base: Any, phases: Phases | None = None) -> tuple[Any, list[dict]]:
    """Grid over fusion weights and normalisation on dev queries: candidates and each
    source's scores are computed once, then re-fused for every setting."""
    from shopsense.search import normalise

    cached = []
    wide = replace(base, mode="hybrid", fusion="weighted", understand=True, boost=0.0)
    for q, g in _steps(phases, list(zip(bench.queries, bench.gains)), "tune on dev"):
        r = searcher.retrieve(q, k=100, options=wide)
        n_sat = np.array([sum(1 for key in ("brand", "color", "size") if key in d) + len(d.get("attributes", {}))
                          for d in r.satisfied], dtype=np.float64)
        cached.append((r.rows, r.lexical.astype(np.float64), r.dense, n_sat, g))
    grid = []
    best = (-1.0, base)
    for norm in ("minmax", "max"):
        for dw in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.3):
            for boost in (0.0, 0.05, 0.1):
                runs = []
                for rows, lex, dense, n_sat, _g in cached:
                    f = normalise(lex, "max") + dw * normalise(dense, norm) + boost * n_sat
                    runs.append(rows[np.argsort(-f, kind="stable")][:100])
                m = evaluate_retrieval(runs, [c[4] for c in cached])
                grid.append({"dense_norm": norm, "dense_weight": dw, "boost": boost, **m})
                if m["ndcg@10"] > best[0]:
                    best = (m["ndcg@10"], replace(base, dense_norm=norm, dense_weight=dw, lexical_weight=1.0,
                                                  boost=boost))
    return best[1], grid


def evaluate(searcher: Any, peer: Peer | None, bench: SearchBenchmark, chosen: Sequence[System],
             tuned_searcher: Any = None, seed: int = 0, phases: Phases | None = None,
             ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Retrieval and re-rank figures of each system on ``bench``; returns (means, per-query scores)."""
    out: dict[str, dict[str, float]] = {}
    per_unit: dict[str, dict[str, dict[str, float]]] = {}
    for system in chosen:
        t0 = time.time()
        if system.options is None:
            if peer is None:
                continue
            rank, score = peer.rank, peer.score
        else:
            s = tuned_searcher if system.tuned else searcher
            if s is None:
                continue

            def rank(q: str, s: Any = s, o: Any = system.options) -> np.ndarray:
                return s.rank(q, k=100, options=o)

            def score(q: str, rows: np.ndarray, s: Any = s, o: Any = system.options) -> np.ndarray:
                return s.score_candidates(q, rows, o)

        runs = [rank(q) for q in _steps(phases, bench.queries, system.name)]
        per = retrieval_scores(runs, bench.gains)
        per["rerank_ndcg@10"] = rerank_scores(score, bench.queries, bench.gains, seed)
        n = len(bench.queries)
        out[system.name] = {"ndcg@10": float(per["ndcg@10"].mean()), "recall@100": float(per["recall@100"].mean()),
                            "mrr": float(per["mrr"].mean()), "queries": n,
                            "rerank_ndcg@10": float(per["rerank_ndcg@10"].mean())}
        per_unit[system.name] = {m: dict(zip(bench.queries, v.tolist())) for m, v in per.items()}
        log.info("%s %s ndcg@10=%.4f %.1fs", bench.name, system.name, out[system.name]["ndcg@10"], time.time() - t0)
    if PEER in out:
        peer_nd, peer_rr = out[PEER]["ndcg@10"], out[PEER]["rerank_ndcg@10"]
        for m in out.values():
            m["ndcg@10_vs_peer"] = m["ndcg@10"] / peer_nd if peer_nd else float("nan")
            m["rerank_ndcg@10_vs_peer"] = m["rerank_ndcg@10"] / peer_rr if peer_rr else float("nan")
    return out, per_unit


def latency(svc: Any, peer: Peer | None, queries: Sequence[str], chosen: Sequence[System]) -> dict[str, dict]:
    """Per-query wall time of the full ``search()`` (parse, BM25, query encoding, ANN,
    fusion, facets, hits) with the query cache off so every query is encoded. Systems on
    the tuned encoder are left out (same model size, so the same cost)."""
    res: dict[str, dict] = {}
    if any(s.dense and not s.tuned for s in chosen):
        enc = svc.searcher.encoder
        if enc is not None and hasattr(enc, "_qcache"):
            enc.query_cache_size = 0
            enc._qcache.clear()
    for system in chosen:
        if system.options is None:
            if peer is not None:
                res[system.name] = latency_percentiles(lambda q: peer.rank(q, 20), queries)
        elif not system.tuned:
            kw = asdict(system.options)
            res[system.name] = latency_percentiles(lambda q, kw=kw: svc.search(q, k=20, **kw), queries)
    return res


# -- the whole protocol on one service ----------------------------------------------------

@dataclass
class SearchRun:
    """Mean figures per system, per-query scores (for bootstrap comparisons) and run facts."""

    results: dict[str, dict[str, float]]  # system -> metric -> value
    per_unit: dict[str, dict[str, dict[str, float]]]  # system -> metric -> query -> score
    meta: dict[str, Any] = field(default_factory=dict)


def run_protocol(svc: Any, bench: SearchBenchmark, keys: Iterable[str] | None = None, *, test_fraction: float = 0.5,
                 split_seed: int = 0, seed: int = 0, latency_queries: int = 200, latency_keys: Iterable[str] | None = None,
                 base: Any = None, tuned_searcher: Any = None, dev_limit: int | None = None,
                 test_limit: int | None = None, phases: Phases | None = None) -> SearchRun:
    """Split, tune on dev (when there is a dev split and a hybrid system), score on test,
    measure latency. ``svc`` is a :class:`~shopsense.search.SearchService`; ``keys`` the
    systems (default: every one available); ``latency_keys`` which systems to time
    (default: the same)."""
    from shopsense.config import DEFAULT_MODEL
    from shopsense.search import SearchOptions

    if not 0.0 < test_fraction <= 1.0:
        raise ValidationError(f"The 'test_fraction' parameter must be in (0, 1]. Got {test_fraction!r} instead.",
                              field="test_fraction")
    t_start = time.time()
    searcher = svc.searcher
    has_dense = searcher.dense is not None and searcher.encoder is not None
    if keys is None:
        keys = [k for k in SYSTEM_KEYS if (has_dense or k not in _DENSE_KEYS)
                and (tuned_searcher is not None or k not in _TUNED_KEYS)]
    keys = list(keys)
    if any(k in _DENSE_KEYS and k not in _TUNED_KEYS for k in keys) and not has_dense:
        raise ValidationError("Dense systems were asked for but the search index has no dense part.", field="systems")
    if any(k in _TUNED_KEYS for k in keys) and tuned_searcher is None:
        raise ValidationError("Tuned-encoder systems were asked for but no tuned encoder was given.", field="systems")
    dev_idx, test_idx = query_split(bench.queries, test_fraction=test_fraction, seed=split_seed)
    dev, test = bench.subset(dev_idx), bench.subset(test_idx)
    if dev_limit is not None:
        dev = dev.subset(range(min(dev_limit, len(dev.queries))))
    if test_limit is not None:
        test = test.subset(range(min(test_limit, len(test.queries))))
    if not test.queries:
        raise ValidationError(f"No test queries: {len(bench.queries)} queries with test_fraction={test_fraction}.",
                              field="test_fraction")
    base = base or SearchOptions()
    peer = Peer(bench.products) if "peer" in keys else None
    wants_dense = any(k in _DENSE_KEYS and k not in _TUNED_KEYS for k in keys)
    tune_main = wants_dense and bool(dev.queries) and any(k.startswith("hybrid") and k not in _TUNED_KEYS for k in keys)
    tune_tuned = bool(dev.queries) and "hybrid-qu-tuned" in keys
    if wants_dense:
        warm_queries(searcher, dev.queries + test.queries if tune_main else test.queries, phases=phases)
    tuned, grid = tune(searcher, dev, base, phases) if tune_main else (base, [])
    tuned_t, grid_t = base, []
    if any(k in _TUNED_KEYS for k in keys):
        warm_queries(tuned_searcher, dev.queries + test.queries if tune_tuned else test.queries, phases=phases)
        if tune_tuned:
            tuned_t, grid_t = tune(tuned_searcher, dev, base, phases)
    model = getattr(searcher.encoder, "model_name", "") if has_dense else ""
    label = "MiniLM" if model.split("/")[-1] == DEFAULT_MODEL else Path(model).name
    chosen = select_systems(keys, tuned, tuned_t, dense_label=label)
    results, per_unit = evaluate(searcher, peer, test, chosen, tuned_searcher, seed=seed, phases=phases)
    meta: dict[str, Any] = {
        "queries": {"all": len(bench.queries), "dev": len(dev.queries), "test": len(test.queries)},
        "split": {"test_fraction": test_fraction, "split_seed": split_seed, "by": "hash of the query string"},
        "seed": seed, "products": len(bench.products), "encoder": model or None,
        # without a dense index the query parser is built without the encoder's vocabulary,
        # which protects common words from spelling correction: query understanding can
        # then score slightly differently (Home Depot bm25 + QU: 0.4130 instead of 0.4133)
        "dense_index": has_dense,
    }
    if peer is not None and dev.queries:
        meta["peer_on_dev"] = evaluate_retrieval([peer.rank(q) for q in dev.queries], dev.gains)
    if tune_main:
        meta["tuned"] = _tuned_values(tuned)
        meta["tuning_grid_dev"] = grid
    else:
        meta["tuned"] = None
        meta["fusion"] = _tuned_values(base)
    if tune_tuned:
        meta["tuned_encoder_tuned"] = _tuned_values(tuned_t)
        meta["tuned_encoder_grid_dev"] = grid_t
    if latency_queries > 0:
        rng = np.random.default_rng(seed)
        lat_q = [test.queries[i] for i in rng.permutation(len(test.queries))[:latency_queries]]
        lat_keys = set(keys if latency_keys is None else latency_keys)
        lat = latency(svc, peer, lat_q, [s for s in chosen if s.key in lat_keys])
        for name, m in lat.items():
            results.setdefault(name, {}).update({f"latency_{k}": v for k, v in m.items()})
        meta["queries"]["latency"] = len(lat_q)
    meta["seconds"] = round(time.time() - t_start, 1)
    return SearchRun(results, per_unit, meta)


def _tuned_values(o: Any) -> dict[str, Any]:
    return {"dense_weight": o.dense_weight, "dense_norm": o.dense_norm, "boost": o.boost,
            "lexical_weight": o.lexical_weight, "synonym_weight": o.synonym_weight}


def open_search(engine: Any, dense: bool, progress: bool = False) -> Any:
    """A :class:`~shopsense.search.SearchService` over ``engine``: the saved index when
    it matches the catalogue (with its dense part even when only lexical systems run,
    so a kept home is not rebuilt), else a fresh build (dense only when asked)."""
    from shopsense.search import SearchService

    svc = SearchService(engine, dense=True)
    if svc.load():
        return svc
    if not dense:
        svc = SearchService(engine, dense=False)
        if svc.load():
            return svc
    svc.build(progress=progress)
    return svc


def _tuned_searcher(engine: Any, svc: Any, model: str, progress: bool) -> Any:
    """The main searcher's lexical index and query parser with a dense index from
    ``model`` (its embeddings cached in the home beside the default model's)."""
    from shopsense.search import DenseIndex, HybridSearcher
    from shopsense.text import TextEncoder, encode_cached, item_texts

    main = svc.searcher
    enc = TextEncoder(model_name=model, batch_size=engine.settings.encoder_batch_size)
    vecs, _ = encode_cached(enc, item_texts(main.catalog, "full"), Path(engine.home) / "embeddings",
                            progress=progress)
    return HybridSearcher(main.catalog, main.lexical, DenseIndex().fit(vecs), main.parser, enc, main.options)


# -- a shop's own files ---------------------------------------------------------------------

def eval_search_files(products: str | Path, judgments: str | Path, *, mapping: dict[str, str] | None = None,
                      judgment_map: dict[str, str] | None = None, fmt: str | None = None, name: str | None = None,
                      home: str | Path | None = None, keys: Iterable[str] | None = None, test_fraction: float = 0.5,
                      split_seed: int = 0, seed: int = 0, latency_queries: int = 200,
                      tuned_encoder: str | None = None, progress: bool = False) -> dict[str, Any]:
    """``shopsense eval search``: ingest ``products`` into a fresh engine (a temporary
    home unless ``home`` is given), read ``judgments``, run :func:`run_protocol`.

    Returns ``{dataset: {system: {metric: value}}, "_meta": {...}, "_per_unit":
    {dataset: {system: {metric: {query: score}}}}}``.
    """
    from shopsense.engine import Engine
    from shopsense.eval._report import meta as report_meta

    products, judgments = Path(products), Path(judgments)
    if not judgments.exists():
        raise ValidationError(f"No such judgments file: {str(judgments)!r}.", field="judgments")
    keys = None if keys is None else list(keys)
    if keys is not None:
        bad = sorted(set(keys) - set(SYSTEM_KEYS))
        if bad:
            raise ValidationError(f"Unknown search system {bad[0]!r}; allowed: {', '.join(SYSTEM_KEYS)}.",
                                  field="systems")
        if any(k in _TUNED_KEYS for k in keys) and not tuned_encoder:
            raise ValidationError("The tuned-encoder systems need --tuned-encoder PATH.", field="systems")
    full_map = product_mapping(products, mapping, fmt)
    dataset = name or products.parent.name or products.stem
    tmp = None if home is not None else tempfile.TemporaryDirectory(prefix="shopsense-eval-")
    home_dir = Path(home) if home is not None else Path(tmp.name)  # type: ignore[union-attr]
    t0 = time.time()
    try:
        eng = Engine(home_dir)
        try:
            report = eng.ingest_products(products, mapping=full_map, format=fmt, progress=progress)
            n_file = report.read - report.rejected
            n_store = eng.store.count_products()
            if n_store != n_file:
                raise ValidationError(f"The home {str(home_dir)!r} already holds {n_store - n_file:,} products that "
                                      f"are not in {products.name}; use an empty home (or none).", field="home")
            if n_file == 0:
                raise ValidationError(f"{products.name}: no valid product rows ({report.rejected:,} rejected; "
                                      f"first: {report.rejects[0] if report.rejects else 'none'}).", field="products")
            catalog = eng.catalog()
            judged = read_judgments(judgments, catalog.index, judgment_map)
            bench = SearchBenchmark(dataset, catalog.products, judged.queries, judged.gains)
            wants_dense = keys is None or any(k in _DENSE_KEYS and k not in _TUNED_KEYS for k in keys)
            t_index = time.time()
            svc = open_search(eng, dense=wants_dense, progress=progress)
            index_s = time.time() - t_index
            tuned = None
            if tuned_encoder and (keys is None or any(k in _TUNED_KEYS for k in keys)):
                tuned = _tuned_searcher(eng, svc, tuned_encoder, progress)
            if keys is None:
                has_dense = svc.searcher.dense is not None
                keys = [k for k in SYSTEM_KEYS if (has_dense or k not in _DENSE_KEYS)
                        and (tuned is not None or k not in _TUNED_KEYS)]
            with (RichPhases() if progress else Phases()) as phases:
                run = run_protocol(svc, bench, keys, test_fraction=test_fraction, split_seed=split_seed, seed=seed,
                                   latency_queries=latency_queries, tuned_searcher=tuned, phases=phases)
        finally:
            eng.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    meta = report_meta(PROTOCOL, dataset=dataset, systems=list(run.results), **run.meta,
                       products_file={"file": str(products), "mapping": full_map, "read": report.read,
                                      "stored": n_file, "rejected": report.rejected,
                                      "first_rejects": [str(r) for r in report.rejects[:5]],
                                      "unknown_columns_as_attributes": report.unknown_columns},
                       judgments_file=judged.report, home=str(home) if home is not None else "temporary",
                       tuned_encoder=tuned_encoder, index_seconds=round(index_s, 1),
                       total_seconds=round(time.time() - t0, 1))
    return {dataset: run.results, "_meta": meta, "_per_unit": {dataset: run.per_unit}}


# -- report ----------------------------------------------------------------------------------

def print_search_table(results: dict[str, Any], console: Any = None) -> None:
    """One Rich table per dataset: retrieval, re-rank and latency figures with the ratio to the peer."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console()
    for ds, rows in results.items():
        if ds.startswith("_"):
            continue
        t = Table(title=f"{ds}: retrieval over all products and re-ranking of judged products")
        for col in ("system", "NDCG@10", "x peer", "Recall@100", "MRR", "re-rank NDCG@10", "p50 ms", "p95 ms",
                    "p99 ms"):
            t.add_column(col, justify="right" if col != "system" else "left")
        for name, m in rows.items():
            def f(key: str, fmt: str = ".4f", m: dict = m) -> str:
                v = m.get(key)
                return format(v, fmt) if isinstance(v, (int, float)) else ""

            t.add_row(name, f("ndcg@10"), f("ndcg@10_vs_peer", ".3f"), f("recall@100"), f("mrr"), f("rerank_ndcg@10"),
                      f("latency_p50_ms", ".1f"), f("latency_p95_ms", ".1f"), f("latency_p99_ms", ".1f"))
        con.print(t)


def plot(results: dict[str, Any], path: str | Path) -> Path | None:
    """Retrieval and re-rank NDCG@10 per system, one panel per dataset (the peer in grey)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is an extra; the JSON is the record
        return None
    datasets = [d for d in results if not d.startswith("_")]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        names = [n for n in results[ds] if "ndcg@10" in results[ds][n] or "rerank_ndcg@10" in results[ds][n]]
        vals = [results[ds][n].get("ndcg@10", np.nan) for n in names]
        rr = [results[ds][n].get("rerank_ndcg@10", np.nan) for n in names]
        x = np.arange(len(names))
        ax.bar(x - 0.2, vals, 0.4, label="retrieval NDCG@10", color=["#999" if n == PEER else "#3a7" for n in names])
        ax.bar(x + 0.2, rr, 0.4, label="re-rank NDCG@10", color="#58c", alpha=0.7)
        ax.set_xticks(x, [n.replace(" + ", "\n+ ").replace(" (", "\n(") for n in names], fontsize=7)
        n_q = results[ds][names[0]].get("queries", "") if names else ""
        ax.set_title(f"{ds} ({n_q} held-out queries)", fontsize=9)
        top = np.nanmax(vals + rr) if names and not np.all(np.isnan(vals + rr)) else 1.0
        ax.set_ylim(0, top * 1.15 or 1.0)
        for xi, v in zip(x, vals):
            if not np.isnan(v):
                ax.text(xi - 0.2, v + 0.005, f"{v:.3f}", ha="center", fontsize=7)
        for xi, v in zip(x, rr):
            if not np.isnan(v):
                ax.text(xi + 0.2, v + 0.005, f"{v:.3f}", ha="center", fontsize=6)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
