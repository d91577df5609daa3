"""Search benchmark: Home Depot and Crowdflower relevance judgments.

Systems, all measured in this run: plain bm25s with default settings (the peer),
our field-weighted BM25, dense only (all-MiniLM-L6-v2, off the shelf), hybrid with
RRF, hybrid with weighted score fusion, and the full system (hybrid + query
understanding). The fusion weights are tuned on the *dev* half of the Home Depot
queries only (split by query string); Home Depot figures are on the test half and
Crowdflower is scored on all its queries with the weights tuned on Home Depot.

    python bench/search.py                 # full run (embeddings cached in bench/.cache)
    python bench/search.py --quick         # 600 test queries, for a smoke run

Writes bench/results/search.json and bench/results/search.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from shopsense.engine import Engine
from shopsense.eval import SEARCH_PEER as PEER
from shopsense.eval import (
    SearchBenchmark,
    evaluate_rerank,
    latency_percentiles,
    load_crowdflower,
    load_homedepot,
    print_search_table,
    query_split,
)
from shopsense.eval import SearchPeer as Peer
from shopsense.eval import plot_search as plot
from shopsense.eval import run_search as run_protocol
from shopsense.search import SearchOptions, SearchService, normalise

log = logging.getLogger("bench.search")

# The systems, tuning, evaluation, latency, table and plot are the package's
# (shopsense.eval.run_search), shared with `shopsense eval search`: one implementation
# of the protocol; this script only picks the datasets and where results go.

LEXICAL = ["peer", "bm25", "bm25-qu"]
ALL = [*LEXICAL, "dense", "hybrid-rrf", "hybrid-weighted", "hybrid-qu"]


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
            "on dev only, figures on test; Crowdflower: all queries, weights from Home Depot dev. Latency: "
            "full search() incl. query encoding (query cache off), after 20 warm-up queries, over the 54,667 "
            "Home Depot products; wall ms and process CPU ms.")


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
    eng.close()
    results["homedepot"] = run.results
    m = run.meta
    if m["tuned"]:
        log.info("tuned on %d dev queries: %s", m["queries"]["dev"], m["tuned"])
    return {
        "command": "python " + " ".join(sys.argv),
        "queries": {k: v for k, v in m["queries"].items() if k != "all"},
        "dense_systems": hd_dense,
        "peer_on_dev": m.get("peer_on_dev"),
        "tuned": m["tuned"] or m["fusion"],
        "tuning_grid_dev": m.get("tuning_grid_dev", []),
        "seconds": round(time.time() - t_start, 1),
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
    eng.close()
    return {"command": "python " + " ".join(sys.argv), "queries": len(cf.queries), "products": len(cf.products),
            "dense_systems": cf_dense, "embedded_text": args.cf_embed, "weights_from": "homedepot dev", "seconds": round(time.time() - t_start, 1)}


if __name__ == "__main__":
    main()
