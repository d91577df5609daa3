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
from shopsense.eval._search import (
    SearchBenchmark,
    evaluate_rerank,
    evaluate_retrieval,
    latency_percentiles,
    load_crowdflower,
    load_homedepot,
    query_split,
)
from shopsense.search import SearchOptions, SearchService
from shopsense.search._fusion import normalise

log = logging.getLogger("bench.search")

PEER = "bm25s defaults (peer)"


class Peer:
    """bm25s exactly as a newcomer would use it: default tokenizer, default BM25."""

    def __init__(self, products: list) -> None:
        import bm25s

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
        top = np.argpartition(-s, k)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return top[s[top] > 0]

    def score(self, q: str, rows: np.ndarray) -> np.ndarray:
        return self._scores(q)[rows]


def open_service(bench: SearchBenchmark, dense: bool = True, embed_text: str = "full") -> tuple[Engine, SearchService]:
    eng = Engine(HERE / ".cache" / f"{bench.name}_home")
    if eng.store.count_products() != len(bench.products):
        eng.add_products(bench.products)
    svc = SearchService(eng, dense=dense, embed_text=embed_text)
    t0 = time.time()
    _ = svc.searcher  # loads the saved index or builds it (embeddings cached on disk)
    log.info("%s: index ready in %.1fs", bench.name, time.time() - t0)
    return eng, svc


def systems(base: SearchOptions, dense: bool = True) -> dict[str, SearchOptions]:
    lexical = {
        "bm25 (ours)": replace(base, mode="bm25", understand=False),
        "bm25 + query understanding": replace(base, mode="bm25", understand=True),
    }
    if not dense:
        return lexical
    return {
        **lexical,
        "dense (MiniLM)": replace(base, mode="dense", understand=False),
        "hybrid rrf": replace(base, mode="hybrid", fusion="rrf", understand=False),
        "hybrid weighted": replace(base, mode="hybrid", fusion="weighted", understand=False),
        "hybrid + query understanding": replace(base, mode="hybrid", fusion="weighted", understand=True),
    }


def warm_queries(svc: SearchService, queries: list[str], understand: bool = True) -> None:
    """Encode every query text once in batches (the LRU cache then serves them), so
    the quality runs do not pay one forward pass per query and system."""
    s = svc.searcher
    enc = s.encoder
    enc.query_cache_size = max(enc.query_cache_size, 4 * len(queries) + 10)
    texts = set()
    for q in queries:
        texts.add(s.parse(q, False).text)
        if understand:
            texts.add(s.parse(q, True).text)
    texts = sorted(t for t in texts if t)
    for i in range(0, len(texts), 512):
        chunk = texts[i:i + 512]
        vecs = enc.encode_documents(chunk)
        for t, v in zip(chunk, vecs):
            enc._qcache[t] = v


def tune(svc: SearchService, bench: SearchBenchmark, base: SearchOptions) -> tuple[SearchOptions, list[dict]]:
    """Grid over fusion weights and normalisation on dev queries: candidates and each
    source's scores are computed once, then re-fused for every setting."""
    s = svc.searcher
    cached = []
    wide = replace(base, mode="hybrid", fusion="weighted", understand=True, boost=0.0)
    for q, g in zip(bench.queries, bench.gains):
        r = s.retrieve(q, k=100, options=wide)
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
                    best = (m["ndcg@10"], replace(base, dense_norm=norm, dense_weight=dw, lexical_weight=1.0, boost=boost))
    return best[1], grid


def evaluate(svc: SearchService, peer: Peer, bench: SearchBenchmark, base: SearchOptions,
             dense: bool = True) -> dict[str, dict]:
    s = svc.searcher
    out: dict[str, dict] = {}
    t0 = time.time()
    runs = [peer.rank(q) for q in bench.queries]
    out[PEER] = {**evaluate_retrieval(runs, bench.gains), **evaluate_rerank(peer.score, bench.queries, bench.gains)}
    log.info("%s %s %.1fs", bench.name, PEER, time.time() - t0)
    for name, opts in systems(base, dense).items():
        t0 = time.time()
        runs = [s.rank(q, k=100, options=opts) for q in bench.queries]
        res = evaluate_retrieval(runs, bench.gains)
        res.update(evaluate_rerank(lambda q, rows, o=opts: s.score_candidates(q, rows, o), bench.queries, bench.gains))
        out[name] = res
        log.info("%s %s ndcg@10=%.4f %.1fs", bench.name, name, res["ndcg@10"], time.time() - t0)
    peer_nd = out[PEER]["ndcg@10"]
    peer_rr = out[PEER]["rerank_ndcg@10"]
    for name, m in out.items():
        m["ndcg@10_vs_peer"] = m["ndcg@10"] / peer_nd if peer_nd else float("nan")
        m["rerank_ndcg@10_vs_peer"] = m["rerank_ndcg@10"] / peer_rr if peer_rr else float("nan")
    return out


def latency(svc: SearchService, peer: Peer, queries: list[str], dense: bool = True) -> dict[str, dict]:
    """Per-query wall time of the full ``search()`` (parse, BM25, query encoding, ANN,
    fusion, facets, hits) with the query cache off so every query is encoded."""
    res = {}
    if dense:
        enc = svc.searcher.encoder
        enc.query_cache_size = 0
        enc._qcache.clear()
        res["hybrid + query understanding"] = latency_percentiles(lambda q: svc.search(q, k=20), queries)
    res["bm25 + query understanding"] = latency_percentiles(lambda q: svc.search(q, k=20, mode="bm25"), queries)
    res[PEER] = latency_percentiles(lambda q: peer.rank(q, 20), queries)
    return res


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in results if not d.startswith("_")]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        names = list(results[ds])
        vals = [results[ds][n].get("ndcg@10", np.nan) for n in names]
        rr = [results[ds][n]["rerank_ndcg@10"] for n in names]
        x = np.arange(len(names))
        ax.bar(x - 0.2, vals, 0.4, label="retrieval NDCG@10", color=["#999" if n == PEER else "#3a7" for n in names])
        ax.bar(x + 0.2, rr, 0.4, label="re-rank NDCG@10", color="#58c", alpha=0.7)
        ax.set_xticks(x, [n.replace(" + ", "\n+ ").replace(" (", "\n(") for n in names], fontsize=7)
        ax.set_title(f"{ds} ({results[ds][names[0]]['queries']} held-out queries)", fontsize=9)
        ax.set_ylim(0, np.nanmax(vals + rr) * 1.15)
        for xi, v in zip(x, vals):
            if not np.isnan(v):
                ax.text(xi - 0.2, v + 0.005, f"{v:.3f}", ha="center", fontsize=7)
        for xi, v in zip(x, rr):
            ax.text(xi + 0.2, v + 0.005, f"{v:.3f}", ha="center", fontsize=6)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
    print_table(results)


PROTOCOL = ("NDCG@10 with gains relevance-1; retrieval over all products (unjudged = 0, ideal DCG from all "
            "judged gains), Recall@100, MRR (gain > 0 relevant); re-rank NDCG@10 over each query's judged "
            "products; Home Depot queries split 50/50 by a hash of the query string, fusion weights tuned "
            "on dev only, figures on test; Crowdflower: all queries, weights from Home Depot dev. Latency: "
            "full search() incl. query encoding (query cache off), after 20 warm-up queries, over the 54,667 "
            "Home Depot products; wall ms and process CPU ms.")


def run_homedepot(args: argparse.Namespace, results: dict) -> dict:
    t_start = time.time()
    hd = load_homedepot()
    dev_idx, test_idx = query_split(hd.queries, test_fraction=0.5, seed=0)
    dev, test = hd.subset(dev_idx), hd.subset(test_idx)
    if args.quick:
        dev, test = dev.subset(range(1000)), test.subset(range(600))
    elif args.test_queries:
        test = test.subset(range(min(args.test_queries, len(test.queries))))
    hd_dense = not args.no_hd_dense
    eng, svc = open_service(hd, dense=hd_dense)
    peer = Peer(hd.products)
    base = SearchOptions()
    if hd_dense:
        warm_queries(svc, dev.queries + test.queries)
        tuned, grid = tune(svc, dev, base)
        log.info("tuned on %d dev queries: dense_weight=%s dense_norm=%s boost=%s", len(dev.queries),
                 tuned.dense_weight, tuned.dense_norm, tuned.boost)
    else:
        tuned, grid = base, []
    results["homedepot"] = evaluate(svc, peer, test, tuned, dense=hd_dense)
    peer_dev = evaluate_retrieval([peer.rank(q) for q in dev.queries], dev.gains)
    rng = np.random.default_rng(0)
    lat_q = [test.queries[i] for i in rng.permutation(len(test.queries))[: args.latency_queries]]
    svc.options = tuned
    svc.searcher.options = tuned
    lat = latency(svc, peer, lat_q, dense=hd_dense)
    for name, m in lat.items():
        results["homedepot"].setdefault(name, {}).update({f"latency_{k}": v for k, v in m.items()})
    eng.close()
    return {
        "command": "python " + " ".join(sys.argv),
        "queries": {"dev": len(dev.queries), "test": len(test.queries), "latency": len(lat_q)},
        "dense_systems": hd_dense,
        "peer_on_dev": peer_dev,
        "tuned": {"dense_weight": tuned.dense_weight, "dense_norm": tuned.dense_norm, "boost": tuned.boost,
                  "lexical_weight": tuned.lexical_weight, "synonym_weight": tuned.synonym_weight},
        "tuning_grid_dev": grid,
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
    peer_cf = Peer(cf.products)
    if cf_dense:
        warm_queries(svc, cf.queries)
    results["crowdflower"] = evaluate(svc, peer_cf, cf, tuned, dense=cf_dense)
    eng.close()
    return {"command": "python " + " ".join(sys.argv), "queries": len(cf.queries), "products": len(cf.products),
            "dense_systems": cf_dense, "embedded_text": args.cf_embed, "weights_from": "homedepot dev", "seconds": round(time.time() - t_start, 1)}


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    for ds, rows in results.items():
        if ds.startswith("_"):
            continue
        t = Table(title=f"{ds}: retrieval over all products and re-ranking of judged products")
        for col in ("system", "NDCG@10", "x peer", "Recall@100", "MRR", "re-rank NDCG@10", "p50 ms", "p95 ms"):
            t.add_column(col, justify="right" if col != "system" else "left")
        for name, m in rows.items():
            def f(key: str, fmt: str = ".4f", m: dict = m) -> str:
                return format(m[key], fmt) if key in m else ""

            t.add_row(name, f("ndcg@10"), f("ndcg@10_vs_peer", ".3f"), f("recall@100"), f("mrr"), f("rerank_ndcg@10"),
                      f"{m['latency_p50_ms']:.1f}" if "latency_p50_ms" in m else "",
                      f"{m['latency_p95_ms']:.1f}" if "latency_p95_ms" in m else "")
        con.print(t)


if __name__ == "__main__":
    main()
