"""Search benchmark: Home Depot and Crowdflower relevance judgments.

Systems, all measured in this run: plain bm25s with default settings (the peer),
our field-weighted BM25, dense only (all-MiniLM-L6-v2, off the shelf), hybrid with
RRF, hybrid with weighted score fusion, and the full system (hybrid + query
understanding), and hybrid + query understanding re-ranked by the learned re-ranker
(LightGBM LambdaMART over query-product features of its top 100 candidates). The fusion
weights are tuned on the *dev* half of the Home Depot queries only (split by query
string); the re-ranker is trained on that dev half too (early stopping on a 20% slice of
it, split by another hash of the query string); Home Depot figures are on the test half
and Crowdflower is scored on all its queries with the weights and the re-ranker from
Home Depot (a transfer: nothing is trained on Crowdflower).

    python bench/search.py                 # full run (embeddings cached in bench/.cache)
    python bench/search.py --quick         # 600 test queries, for a smoke run

Writes bench/results/search.json and bench/results/search.png.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from shopsense.engine import Engine
from shopsense.eval import SEARCH_PEER as PEER
from shopsense.eval import (
    SearchBenchmark,
    bootstrap_diff,
    evaluate_rerank,
    latency_percentiles,
    load_crowdflower,
    load_homedepot,
    print_search_table,
    query_split,
    retrieval_scores,
    warm_queries,
)
from shopsense.eval import SearchPeer as Peer
from shopsense.eval import plot_search as plot
from shopsense.eval import run_search as run_protocol
from shopsense.search import (
    RERANK_FEATURES,
    HybridSearcher,
    LearnedReranker,
    SearchOptions,
    SearchService,
    normalise,
    rerank_features,
)

log = logging.getLogger("bench.search")

# The systems, tuning, evaluation, latency, table and plot are the package's
# (shopsense.eval.run_search), shared with `shopsense eval search`: one implementation
# of the protocol; this script only picks the datasets and where results go.

LEXICAL = ["peer", "bm25", "bm25-qu"]
ALL = [*LEXICAL, "dense", "hybrid-rrf", "hybrid-weighted", "hybrid-qu"]
HYBRID_QU = "hybrid + query understanding"
RERANKED = "hybrid + QU + learned re-ranker"
#: re-ranker settings, fixed before any figure was seen: candidates re-ordered, LightGBM's.
#: Checked afterwards on the validation slice only (results _meta.homedepot.reranker
#: .selection_on_validation): 63 or 15 leaves, learning rate 0.1 or 0.02 and extra
#: pseudo-relevance features all scored below these, so they stay
RERANK_DEPTH = 100
RERANK_PARAMS = {"n_estimators": 1000, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 50,
                 "early_stopping": 50}


def open_service(bench: SearchBenchmark, dense: bool = True, embed_text: str = "full") -> tuple[Engine, SearchService]:
    eng = Engine(HERE / ".cache" / f"{bench.name}_home")
    if eng.store.count_products() != len(bench.products):
        eng.add_products(bench.products)
    svc = SearchService(eng, dense=dense, embed_text=embed_text)
    t0 = time.time()
    _ = svc.searcher  # loads the saved index or builds it (embeddings cached on disk)
    log.info("%s: index ready in %.1fs", bench.name, time.time() - t0)
    return eng, svc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="600 test queries and a 1,000-query dev sample")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "search.json")
    ap.add_argument("--latency-queries", type=int, default=1000)
    ap.add_argument("--test-queries", type=int, default=0, help="score only this many Home Depot test queries (0: all)")
    ap.add_argument("--datasets", nargs="+", default=["homedepot", "crowdflower"],
                    help="which datasets to run; results of the others already in --out are kept")
    ap.add_argument("--no-hd-dense", action="store_true",
                    help="Home Depot without the dense systems (when its embeddings are not cached yet)")
    ap.add_argument("--hd-rerank-dense", type=int, default=0, metavar="N",
                    help="re-rank-only dense/hybrid figures on N Home Depot test queries, encoding only "
                         "their judged products (when the full 54,667 embeddings are not cached yet)")
    ap.add_argument("--no-cf-dense", action="store_true",
                    help="Crowdflower without the dense systems (when its embeddings are not cached yet)")
    ap.add_argument("--cf-embed", choices=["full", "title"], default="full",
                    help="what Crowdflower products are embedded from (titles are ~8x cheaper to encode)")
    ap.add_argument("--no-reranker", action="store_true", help="leave the learned re-ranker system out")
    ap.add_argument("--rerank-cache", type=Path, default=HERE / ".cache" / "rerank_features",
                    help="where the re-ranker's candidate features are cached (keyed by the split, the first "
                         "stage's options and the feature code)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    meta = results.pop("_meta", {})

    if args.hd_rerank_dense:
        meta["homedepot_rerank_dense"] = run_homedepot_rerank_dense(args, results)
    elif "homedepot" in args.datasets:
        meta["homedepot"] = run_homedepot(args, results)
    if "crowdflower" in args.datasets:
        meta["crowdflower"] = run_crowdflower(args, results, meta)
    meta.update({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
                   f"(load average {os.getloadavg()[0]:.1f} at the end), torch threads {torch.get_num_threads()}, "
                   "encoder on CPU",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": PROTOCOL,
    })
    results["_meta"] = meta
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.out.with_suffix(".png"))
    print_search_table(results)


PROTOCOL = ("NDCG@10 with gains relevance-1; retrieval over all products (unjudged = 0, ideal DCG from all "
            "judged gains), Recall@100, MRR (gain > 0 relevant); re-rank NDCG@10 over each query's judged "
            "products; Home Depot queries split 50/50 by a hash of the query string, fusion weights tuned "
            "and the learned re-ranker trained on dev only (early stopping on a hashed 20% slice of dev), "
            "figures on test; Crowdflower: all queries, weights and re-ranker from Home Depot dev. Latency: "
            "full search() incl. query encoding (query cache off), after 20 warm-up queries, over the 54,667 "
            "Home Depot products; wall ms and process CPU ms; with the re-ranker, search() without and with "
            "it query by query in turn, and the re-ranking step alone.")


def run_homedepot(args: argparse.Namespace, results: dict) -> dict:
    t_start = time.time()
    hd = load_homedepot()
    hd_dense = not args.no_hd_dense
    eng, svc = open_service(hd, dense=hd_dense)
    run = run_protocol(svc, hd, ALL if hd_dense else LEXICAL, test_fraction=0.5, split_seed=0, seed=0,
                       latency_queries=args.latency_queries,
                       latency_keys=["peer", "bm25-qu", "hybrid-qu"] if hd_dense else ["peer", "bm25-qu"],
                       dev_limit=1000 if args.quick else None,
                       test_limit=600 if args.quick else (args.test_queries or None))
    results["homedepot"] = run.results
    m = run.meta
    if m["tuned"]:
        log.info("tuned on %d dev queries: %s", m["queries"]["dev"], m["tuned"])
    out = {
        "command": "python " + " ".join(sys.argv),
        "queries": {k: v for k, v in m["queries"].items() if k != "all"},
        "split": m.get("split"),
        "dense_systems": hd_dense,
        "peer_on_dev": m.get("peer_on_dev"),
        "tuned": m["tuned"] or m["fusion"],
        "tuning_grid_dev": m.get("tuning_grid_dev", []),
    }
    if hd_dense and not args.no_reranker:
        out["reranker"] = run_homedepot_reranker(args, hd, eng, svc, out["tuned"], run.results, run.per_unit)
    eng.close()
    out["seconds"] = round(time.time() - t_start, 1)
    return out


# -- the learned re-ranker ------------------------------------------------------------------

def _feature_key(name: str, queries: list[str], opts: SearchOptions) -> str:
    """Cache key of a feature pass: the queries, the first stage's options, the depth and
    the source of the feature builder (a changed feature invalidates the cache)."""
    h = hashlib.blake2b(digest_size=10)
    for part in (name, "\x00".join(queries), json.dumps(asdict(opts), sort_keys=True), str(RERANK_DEPTH),
                 ",".join(RERANK_FEATURES), inspect.getsource(rerank_features)):
        h.update(part.encode())
        h.update(b"\x01")
    return h.hexdigest()


def collect_candidates(searcher, name: str, queries: list[str], opts: SearchOptions,
                       cache: Path | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per query: the first stage's top RERANK_DEPTH rows and their features."""
    path = None
    if cache is not None:
        path = cache / f"{name}-{_feature_key(name, queries, opts)}.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            lens = z["lens"]
            cuts = np.cumsum(lens)[:-1]
            log.info("%s: candidate features from %s", name, path)
            return np.split(z["rows"], cuts), np.split(z["X"], cuts)
    t0 = time.time()
    rows, feats = [], []
    for i, q in enumerate(queries):
        r = searcher.retrieve(q, k=RERANK_DEPTH, options=opts)
        x = rerank_features(searcher, r, RERANK_DEPTH)
        rows.append(np.asarray(r.rows[:len(x)], dtype=np.int64))
        feats.append(x)
        if (i + 1) % 1000 == 0:
            log.info("%s: features of %d/%d queries (%.0fs)", name, i + 1, len(queries), time.time() - t0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, rows=np.concatenate(rows) if rows else np.zeros(0, np.int64),
                 X=np.concatenate(feats) if feats else np.zeros((0, len(RERANK_FEATURES)), np.float32),
                 lens=np.array([len(r) for r in rows], dtype=np.int64))
    return rows, feats


def training_arrays(rows: list[np.ndarray], feats: list[np.ndarray],
                    gains: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = [i for i in range(len(rows)) if len(rows[i])]
    X = np.concatenate([feats[i] for i in keep])
    y = np.concatenate([np.array([gains[i].get(int(r), 0.0) for r in rows[i]], np.float32) for i in keep])
    return X, y, np.array([len(rows[i]) for i in keep], dtype=np.int64)


def reranked_runs(model: LearnedReranker, rows: list[np.ndarray], feats: list[np.ndarray]) -> list[np.ndarray]:
    """The first stage's candidates ordered by the learned score (stable: ties keep the
    first-stage order), as LearnedReranker.rerank orders them."""
    return [r[np.argsort(-model.score(x), kind="stable")] if len(r) > 1 else r for r, x in zip(rows, feats)]


def _percentiles(ms: list[float], prefix: str) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"{prefix}p50_ms": float(np.percentile(a, 50)), f"{prefix}p95_ms": float(np.percentile(a, 95)),
            f"{prefix}p99_ms": float(np.percentile(a, 99)), f"{prefix}mean_ms": float(a.mean())}


def paired_latency(svc: SearchService, model: LearnedReranker, opts: SearchOptions, queries: list[str],
                   warmup: int = 20) -> dict[str, dict[str, float]]:
    """Full search() without and with the re-ranker, query by query in turn (so both see
    the same machine load), plus the re-ranking step alone; wall and process-CPU ms, the
    query cache off so every query is encoded."""
    enc = svc.searcher.encoder
    if enc is not None and hasattr(enc, "_qcache"):
        enc.query_cache_size = 0
        enc._qcache.clear()
    kw = asdict(opts)
    s = svc.searcher
    for q in queries[:warmup]:
        svc.reranker = None
        svc.search(q, k=20, **kw)
        svc.reranker = model
        svc.search(q, k=20, **kw)
    wall: dict[str, list[float]] = {"off": [], "on": [], "added": [], "added_cold": []}
    cpu: dict[str, list[float]] = {"off": [], "on": [], "added": [], "added_cold": []}
    for q in queries:
        for key, m in (("off", None), ("on", model)):
            svc.reranker = m
            c0, t0 = time.process_time(), time.perf_counter()
            svc.search(q, k=20, **kw)
            wall[key].append((time.perf_counter() - t0) * 1000.0)
            cpu[key].append((time.process_time() - c0) * 1000.0)
        r = s.retrieve(q, k=20, options=opts)
        # a searcher over the same indexes, new to the re-ranker: none of its candidates' titles
        # analysed yet (a server's first queries; the warm figure is its steady state)
        fresh = HybridSearcher(s.catalog, s.lexical, s.dense, s.parser, s.encoder, s.options)
        for key, searcher in (("added", s), ("added_cold", fresh)):
            c0, t0 = time.process_time(), time.perf_counter()
            model.rerank(searcher, r)
            wall[key].append((time.perf_counter() - t0) * 1000.0)
            cpu[key].append((time.process_time() - c0) * 1000.0)
    svc.reranker = None
    return {k: {**_percentiles(wall[k], ""), **_percentiles(cpu[k], "cpu_"), "n": len(queries)} for k in wall}


def run_homedepot_reranker(args: argparse.Namespace, hd: SearchBenchmark, eng: Engine, svc: SearchService,
                           tuned: dict, res: dict, per_unit: dict) -> dict:
    """Train the re-ranker on the dev half (the half the fusion weights were tuned on),
    early-stopping on a 20% slice of it, save it in the home, score the test half."""
    t0 = time.time()
    opts = replace(SearchOptions(), **tuned)
    dev_idx, test_idx = query_split(hd.queries, test_fraction=0.5, seed=0)  # the protocol's split, exactly
    dev, test = hd.subset(dev_idx), hd.subset(test_idx)
    if args.quick:
        dev, test = dev.subset(range(min(1000, len(dev.queries)))), test.subset(range(min(600, len(test.queries))))
    elif args.test_queries:
        test = test.subset(range(min(args.test_queries, len(test.queries))))
    fit_pos, val_pos = query_split(dev.queries, test_fraction=0.2, seed=1)  # another salt: a slice of dev
    fit, val = dev.subset(fit_pos), dev.subset(val_pos)
    s = svc.searcher
    warm_queries(s, dev.queries + test.queries)
    cache = args.rerank_cache
    f_rows, f_x = collect_candidates(s, "hd-fit", fit.queries, opts, cache)
    v_rows, v_x = collect_candidates(s, "hd-val", val.queries, opts, cache)
    t_rows, t_x = collect_candidates(s, "hd-test", test.queries, opts, cache)
    t_feat = time.time() - t0
    # one thread: on 2 cores shared with other jobs, LightGBM's OpenMP threads spin against the
    # other processes (a 2-thread fit ran 14x slower than a 1-thread one at load 5); serving
    # uses one thread too (a query's 100 rows are too few to share)
    model = LearnedReranker(depth=RERANK_DEPTH, num_threads=1, **RERANK_PARAMS)
    model.fit(*training_arrays(f_rows, f_x, fit.gains), validation=training_arrays(v_rows, v_x, val.gains))
    saved = model.save(svc.reranker_dir, extra={
        "trained_on": "Home Depot judgments, dev half of the queries (hash of the query string, seed 0), "
                      "early stopping on a 20% slice of it (seed 1)",
        "first_stage": tuned})
    # check: the service's path (retrieve + LearnedReranker.rerank) orders as the feature rows do
    same = sum(np.array_equal(model.rank(s, q, k=RERANK_DEPTH, options=opts), r)
               for q, r in list(zip(test.queries, reranked_runs(model, t_rows, t_x)))[:50])
    if same < min(50, len(test.queries)):
        log.warning("re-ranker: the service's order differs from the benchmark's on %d of 50 queries",
                    min(50, len(test.queries)) - same)
    first = retrieval_scores(t_rows, test.gains)
    per = retrieval_scores(reranked_runs(model, t_rows, t_x), test.gains)
    m = {"ndcg@10": float(per["ndcg@10"].mean()), "recall@100": float(per["recall@100"].mean()),
         "mrr": float(per["mrr"].mean()), "queries": len(test.queries)}
    if PEER in res:
        m["ndcg@10_vs_peer"] = m["ndcg@10"] / res[PEER]["ndcg@10"]
    base = per_unit.get(HYBRID_QU, {}).get("ndcg@10")
    diff = bootstrap_diff(np.array([base[q] for q in test.queries]), per["ndcg@10"]) if base else None
    rng = np.random.default_rng(0)  # the protocol's latency queries
    lat_q = [test.queries[i] for i in rng.permutation(len(test.queries))[:args.latency_queries]]
    lat = paired_latency(svc, model, opts, lat_q) if lat_q else {}
    if lat:
        m.update({f"latency_{k}": v for k, v in lat["on"].items()})
        m.update({f"rerank_added_{k}": v for k, v in lat["added"].items() if k != "n"})
        m.update({f"rerank_added_cold_{k}": v for k, v in lat["added_cold"].items() if k != "n"})
    res[RERANKED] = m
    imp = model.feature_importance()
    total = sum(imp.values()) or 1.0
    log.info("re-ranker on %d test queries: NDCG@10 %.4f (first stage %.4f)", len(test.queries), m["ndcg@10"],
             float(first["ndcg@10"].mean()))
    return {
        "system": RERANKED, "model": str(saved), "depth": RERANK_DEPTH, "params": model.params(),
        "features": list(RERANK_FEATURES),
        "split": {"train": "dev half of the protocol split (query_split(test_fraction=0.5, seed=0))",
                  "fit_queries": len(fit.queries), "validation_queries": len(val.queries),
                  "validation": "query_split(dev, test_fraction=0.2, seed=1): early stopping only",
                  "test_queries": len(test.queries)},
        "labels": "gain = relevance - 1 in thirds -> integer labels 0..6, label_gain = label / 3 (linear, as the "
                  "evaluation's DCG); candidates not judged = 0",
        "trees": model.best_iteration_, "validation_ndcg@10_lightgbm": model.best_score_,
        "service_order_check": {"queries": min(50, len(test.queries)), "same_order_as_bench": int(same)},
        "fit_seconds": round(model.fit_seconds_, 1), "feature_seconds": round(t_feat, 1),
        "first_stage_on_test": {k: float(v.mean()) for k, v in first.items()},
        "ndcg@10_minus_hybrid_qu": None if diff is None else
        {"mean": diff[0], "ci95": [diff[1], diff[2]], "paired_queries": len(test.queries)},
        "latency_paired": lat,
        "feature_gain_share": {k: round(v / total, 4) for k, v in sorted(imp.items(), key=lambda kv: -kv[1])},
        "not_reported": "re-rank NDCG@10 of the judged products only: the re-ranker's features (first-stage "
                        "rank and scores among the top 100) are defined on the first stage's candidates, not "
                        "on an arbitrary judged set",
        "seconds": round(time.time() - t0, 1),
    }


def run_homedepot_rerank_dense(args: argparse.Namespace, results: dict) -> dict:
    """Re-ranking of the judged products of held-out queries by BM25, dense and the
    weighted hybrid (default weights, not tuned here): only the judged products are
    encoded, so this runs where the full catalogue has not been embedded yet."""
    from shopsense.search import Analyzer, LexicalIndex, QueryParser, product_fields
    from shopsense.text import TextEncoder, encode_cached

    t_start = time.time()
    hd = load_homedepot()
    _, test_idx = query_split(hd.queries, test_fraction=0.5, seed=0)
    test = hd.subset(test_idx).subset(range(args.hd_rerank_dense))
    rows = np.array(sorted({r for g in test.gains for r in g}), dtype=np.int64)
    enc = TextEncoder()
    vecs, n_new = encode_cached(enc, [hd.products[int(r)].text() for r in rows],
                                HERE / ".cache" / "homedepot_home" / "embeddings", prune=False)
    pos = {int(r): i for i, r in enumerate(rows)}
    an = Analyzer()
    lex = LexicalIndex(analyzer=an, k1=1.2, b=0.5).fit(product_fields(hd.products))
    parser = QueryParser(analyzer=an, protected_words={w for w in enc.model.tokenizer.get_vocab()
                                                       if w.isalpha() and len(w) >= 4}).fit(hd.products)
    peer = Peer(hd.products)
    opts = SearchOptions()
    out: dict[str, dict] = {}

    def bm25(q: str, r: np.ndarray) -> np.ndarray:
        p = parser.parse(q)
        s = lex.scores(an.analyze(p.text))
        if p.synonyms:
            s = s + opts.synonym_weight * lex.scores(an.analyze(" ".join(t for ts in p.synonyms.values() for t in ts)))
        return s[r]

    def dense(q: str, r: np.ndarray) -> np.ndarray:
        qv = enc.encode_queries([parser.parse(q).text or q])[0]
        return vecs[[pos[int(x)] for x in r]] @ qv

    def hybrid(q: str, r: np.ndarray) -> np.ndarray:
        return (opts.lexical_weight * normalise(bm25(q, r), "max")
                + opts.dense_weight * normalise(dense(q, r), opts.dense_norm))

    for name, fn in ((PEER, peer.score), ("bm25 + query understanding", bm25), ("dense (MiniLM)", dense),
                     ("hybrid + query understanding", hybrid)):
        out[name] = evaluate_rerank(fn, test.queries, test.gains)
        out[name]["queries"] = len(test.queries)
    for name, m in out.items():
        m["rerank_ndcg@10_vs_peer"] = m["rerank_ndcg@10"] / out[PEER]["rerank_ndcg@10"]
    # what the dense path adds to a query's latency: one query encoded on the CPU, cache off
    enc.query_cache_size = 0
    enc._qcache.clear()
    out["hybrid + query understanding"].update(
        {f"query_encoding_{k}": v for k, v in latency_percentiles(lambda q: enc.encode_queries([q]),
                                                                   test.queries[:300]).items()})
    results["homedepot (re-rank only, dense)"] = out
    return {"command": "python " + " ".join(sys.argv), "queries": len(test.queries), "encoded": int(n_new),
            "judged_products": len(rows), "weights": {"dense_weight": opts.dense_weight, "dense_norm": opts.dense_norm},
            "seconds": round(time.time() - t_start, 1)}


def run_crowdflower(args: argparse.Namespace, results: dict, meta: dict) -> dict:
    t_start = time.time()
    tuned_values = meta.get("homedepot", {}).get("tuned")
    if tuned_values is None:
        raise SystemExit("run the homedepot part first: Crowdflower uses the weights tuned on Home Depot dev")
    tuned = replace(SearchOptions(), **tuned_values)
    cf = load_crowdflower()
    cf_dense = not args.no_cf_dense
    eng, svc = open_service(cf, dense=cf_dense, embed_text=args.cf_embed)
    # every query is scored (test_fraction 1.0) with the weights tuned on Home Depot dev
    run = run_protocol(svc, cf, ALL if cf_dense else LEXICAL, test_fraction=1.0, base=tuned, latency_queries=0)
    results["crowdflower"] = run.results
    out = {"command": "python " + " ".join(sys.argv), "queries": len(cf.queries), "products": len(cf.products),
           "dense_systems": cf_dense, "embedded_text": args.cf_embed, "weights_from": "homedepot dev"}
    hd_model = HERE / ".cache" / "homedepot_home" / "models" / "search_reranker"
    if cf_dense and not args.no_reranker:
        if not (hd_model / "manifest.json").exists():
            raise SystemExit(f"no Home Depot re-ranker in {hd_model}: run the homedepot part first")
        out["reranker"] = run_crowdflower_reranker(args, cf, svc, tuned, run.results, run.per_unit, hd_model)
    eng.close()
    out["seconds"] = round(time.time() - t_start, 1)
    return out


def run_crowdflower_reranker(args: argparse.Namespace, cf: SearchBenchmark, svc: SearchService, tuned: SearchOptions,
                             res: dict, per_unit: dict, hd_model: Path) -> dict:
    """The re-ranker trained on Home Depot (dev half) applied to every Crowdflower query:
    a transfer, nothing is fitted on Crowdflower."""
    t0 = time.time()
    model = LearnedReranker.load(hd_model)
    s = svc.searcher
    warm_queries(s, cf.queries)
    rows, feats = collect_candidates(s, "cf-all", cf.queries, tuned, args.rerank_cache)
    first = retrieval_scores(rows, cf.gains)
    per = retrieval_scores(reranked_runs(model, rows, feats), cf.gains)
    m = {"ndcg@10": float(per["ndcg@10"].mean()), "recall@100": float(per["recall@100"].mean()),
         "mrr": float(per["mrr"].mean()), "queries": len(cf.queries)}
    if PEER in res:
        m["ndcg@10_vs_peer"] = m["ndcg@10"] / res[PEER]["ndcg@10"]
    res[RERANKED] = m
    base = per_unit.get(HYBRID_QU, {}).get("ndcg@10")
    diff = bootstrap_diff(np.array([base[q] for q in cf.queries]), per["ndcg@10"]) if base else None
    return {"system": RERANKED, "model": str(hd_model), "trained_on": model.manifest_.get("trained_on"),
            "first_stage_on_all": {k: float(v.mean()) for k, v in first.items()},
            "ndcg@10_minus_hybrid_qu": None if diff is None else
            {"mean": diff[0], "ci95": [diff[1], diff[2]], "paired_queries": len(cf.queries)},
            "seconds": round(time.time() - t0, 1)}


if __name__ == "__main__":
    main()
