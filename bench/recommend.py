"""Recommendation benchmark: leave-one-out on Amazon Beauty, Sports and Office.

Protocol (S3-Rec/P5/TIGER): last item = test, second-to-last = validation, rank ALL
items with the history excluded, Recall@10 / NDCG@10 averaged over every user.
Generators for the ranker are fitted on s[:-2] and the LambdaMART ranker learns from
the validation item; for test, the cheap generators are refitted on s[:-1] (these
refits are also the EASE / ALS peers reported), SASRec keeps its s[:-2] weights and
reads s[:-1] (the original SASRec protocol). Hyperparameters were chosen on
validation only; the item-transition heuristic (issue 21) chooses its window, decay and
history reading on s[-2] with counts from s[:-2], then counts again on s[:-1] for test.
The stack runs twice in the same run, with and without the transition generator
(``--stack-without``), so what it adds is measured on the same split and seed. Office
adds a cold-start test: 10% of items are hidden from all training and histories;
Recall@10 on users whose test item is hidden.

    python bench/recommend.py                       # all three datasets
    python bench/recommend.py --datasets beauty --sasrec-seconds 600
    python bench/recommend.py --datasets sports --cf itemknn   # EASE on 18k items: ~30 min on a busy CPU
    python bench/recommend.py --merge bench/results/recommend.json /tmp/rb/beauty.json   # replace one dataset

On a shared CPU, run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1: multi-threaded BLAS and
LightGBM under oversubscription were 10-15x slower than one thread here. Datasets can run as
parallel processes (``--out /tmp/x.json``) and be joined with ``--merge a.json b.json``: later
files replace the datasets they hold, the others (and their ``_meta`` parts) are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "rec"
OUT = ROOT / "bench" / "results"
PUBLISHED = {  # ../shared/datasets/README.md, same files and protocol
    "beauty": {"SASRec (published)": (0.0605, 0.0318), "TIGER (published)": (0.0648, 0.0384)},
    "sports": {"TIGER (published)": (0.0400, 0.0225)},
}


def run(name: str, seqs: list[np.ndarray], n_items: int, args: argparse.Namespace,
        texts: list[str] | None = None, categories: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """One dataset through the shared protocol (shopsense.eval.run_recommend, also behind
    ``shopsense eval recommend``); datasets with item text add content and a 10% cold start."""
    from shopsense.eval import Phases, item_vectors, run_recommend

    vecs = item_vectors(texts, args.cache) if texts is not None else None
    systems = (["popularity", *args.cf, "als"] + (["content"] if vecs is not None else []) + ["transition", "sasrec",
                                                                                             "stack"])
    print(f"\n== {name}", flush=True)
    out = run_recommend(seqs, n_items, systems=systems, item_vectors=vecs, categories=categories,
                        cold_start_fraction=0.1 if texts is not None else 0.0, seed=0, ease_l2=args.ease_l2,
                        candidates=args.candidates, ranker_users=args.ranker_users,
                        sasrec_seconds=args.sasrec_seconds, sasrec_lr=args.sasrec_lr,
                        sasrec_dropout=args.sasrec_dropout, sasrec_negatives=args.sasrec_negatives,
                        sasrec_patience=args.sasrec_patience, threads=1, stack_without=args.stack_without,
                        phases=Phases(echo=lambda m: print(m, flush=True)))
    res = out.results
    print("  top features:", out.info.get("stack_top_features"), flush=True)
    if "transition_params" in out.info:  # chosen on s[-2]; kept beside the figures
        res["transition"]["chosen_on_validation"] = out.info["transition_params"]  # type: ignore[assignment]
        res["transition"]["validation_ndcg@10"] = out.info["transition_validation"][0]["ndcg@10"]
    for sysname, (rc, nd) in PUBLISHED.get(name, {}).items():
        res[sysname] = {"recall@10": rc, "ndcg@10": nd}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["beauty", "office", "sports"])
    ap.add_argument("--sasrec-seconds", type=float, default=600.0, help="SASRec training budget per dataset")
    ap.add_argument("--sasrec-lr", type=float, default=2e-3)
    ap.add_argument("--sasrec-dropout", type=float, default=0.3)
    ap.add_argument("--sasrec-negatives", type=int, default=0,
                    help="0: full softmax; N: sampled softmax over N uniform negatives (eSASRec's loss)")
    ap.add_argument("--sasrec-patience", type=int, default=3,
                    help="validations (every 2 epochs) without a better NDCG@10 before SASRec stops")
    ap.add_argument("--ease-l2", type=float, default=250.0)
    ap.add_argument("--cf", nargs="+", default=["ease"], help="closed-form CF generators: ease and/or itemknn")
    ap.add_argument("--stack-without", nargs="*", default=["transition"],
                    help="generators to leave out of a second stack trained in the same run (ablation)")
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--ranker-users", type=int, default=10000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/shopsense-bench-cache"))
    ap.add_argument("--out", type=Path, default=OUT / "recommend.json")
    ap.add_argument("--max-users", type=int, default=0, help="only the first N users of each dataset (smoke runs)")
    ap.add_argument("--merge", nargs="*", type=Path, default=None,
                    help="only merge these per-dataset JSON files into --out (datasets run in parallel)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch
    torch.set_num_threads(1)  # on a shared, oversubscribed CPU one thread is ~3x faster than two
    from shopsense.eval import (
        bar_chart,
        meta,
        office_text,
        print_table,
        read_office,
        read_user_sequences,
        write_json,
    )

    if not DATA.exists():
        sys.exit(f"datasets not found at {DATA}")
    out_json = args.out
    results: dict = {}
    if args.merge is not None:
        import json
        parts: dict = {}
        first: dict = {}
        for f in args.merge:
            part = json.loads(f.read_text())
            m = part.pop("_meta", {})
            first = first or m
            results.update(part)
            # a merged file brings its parts; a single run's meta is the part of each dataset it holds
            parts.update(m["parts"] if "parts" in m else {ds: m for ds in part if not ds.startswith("_")})
        write_json(results, out_json, {**{k: v for k, v in first.items() if k != "parts"},
                                       "parts": {ds: parts[ds] for ds in results if ds in parts}})
        args.datasets = []
    for ds in args.datasets:
        if ds in ("beauty", "sports"):
            seqs, ids = read_user_sequences(DATA / f"amazon-{ds}" / "user_sequence.txt")
            results[ds] = run(ds, seqs[: args.max_users or None], len(ids), args)
        else:
            from shopsense.eval import item_categories

            seqs, records = read_office(DATA / "amazon-office")
            results[ds] = run(ds, seqs[: args.max_users or None], len(records), args,
                              texts=[office_text(r) for r in records], categories=item_categories(records))
        write_json(results, out_json, meta(
            "leave-one-out, rank all items, history excluded; Recall@10/NDCG@10 per user, mean; "
            "generators for the ranker fit on s[:-2], ranker trained on s[-2], test s[-1]; "
            "EASE/ALS peers fit on s[:-1] in the same run; transition: window/decay/backward/last/recency chosen "
            "on s[-2] with counts from s[:-2] (at most 25,000 validation users, seed 0), counted again on s[:-1] for "
            "test; the stack also trained without the generators in --stack-without in the same run; "
            "cold start: 10% items hidden (seed 0)",
            sasrec_seconds=args.sasrec_seconds, sasrec_negatives=args.sasrec_negatives,
            sasrec_patience=args.sasrec_patience, torch_threads=1, ranker_users=args.ranker_users,
            stack_without=args.stack_without,
            note="CPU shared with other jobs; SASRec is time-budgeted, a GPU would let it train to convergence"))
    print_table({d: {s: {m: v for m, v in r.items() if m in ("recall@10", "ndcg@10", "cold_recall@10",
                                                          "train_seconds", "latency_p99_ms")}
                     for s, r in sy.items()} for d, sy in results.items()}, title="recommend", peer="ease")
    bar_chart(results, "ndcg@10", out_json.with_suffix(".png"), title="NDCG@10, leave-one-out, all items ranked")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
