"""Lesson 9, for business readers: what each capability moves, with the benchmark figures
as evidence.

Reads the committed results in bench/results/*.json (each produced by a script in bench/ on
public data, with a peer measured in the same run) and prints, per capability, the business
number it is meant to move and the offline evidence that it can.

    python docs/lessons/09_business.py [--check]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _course import cli, heading

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def load(name: str) -> dict[str, Any]:
    """One committed benchmark result: ``{"dataset": {"system": {"metric": value}}, "_meta": ...}``."""
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def evidence() -> list[dict[str, Any]]:
    """(capability, what it moves, metric, before, after) from the committed figures."""
    search, rec, bundles = load("search")["homedepot"], load("recommend")["beauty"], load("bundles")["online_retail"]
    tune, rerank = load("tune")["homedepot"], load("rerank")["amazon-beauty"]
    exp = load("experiments")["bm25 + QU vs hybrid + QU"]["navigational"]["impressions_for_95"]
    return [
        {"capability": "hybrid search + query understanding", "moves": "conversion (shoppers find it)",
         "evidence": "Home Depot NDCG@10, bm25s peer -> shopsense",
         "before": search["bm25s defaults (peer)"]["ndcg@10"], "after": search["hybrid + query understanding"]["ndcg@10"]},
        {"capability": "encoder tuned on the shop's judgments", "moves": "conversion on the shop's own words",
         "evidence": "Home Depot NDCG@10, hybrid+QU off-the-shelf -> tuned",
         "before": tune["shopsense hybrid+QU (off-the-shelf)"]["ndcg@10"],
         "after": tune["shopsense hybrid+QU (tuned-full)"]["ndcg@10"]},
        {"capability": "recommendations (LambdaMART stack)", "moves": "conversion, revenue per visit",
         "evidence": "Amazon Beauty NDCG@10, popularity -> stack",
         "before": rec["popularity"]["ndcg@10"], "after": rec["full stack (LambdaMART)"]["ndcg@10"]},
        {"capability": "recommendations (LambdaMART stack)", "moves": "conversion, revenue per visit",
         "evidence": "Amazon Beauty NDCG@10, EASE -> stack",
         "before": rec["ease"]["ndcg@10"], "after": rec["full stack (LambdaMART)"]["ndcg@10"]},
        {"capability": "complements and cart completion", "moves": "basket size",
         "evidence": "Online Retail Hit@10, association rules -> complement model",
         "before": bundles["mlxtend_rules"]["hit@10"], "after": bundles["complement"]["hit@10"]},
        {"capability": "diversity re-ranking (MaxSum 0.4)", "moves": "discovery (variety seen)",
         "evidence": "Amazon Beauty intra-list diversity@10",
         "before": rerank["relevance (lambda=0)"]["ild@10"], "after": rerank["maxsum lambda=0.4"]["ild@10"],
         "cost": f"NDCG@10 {rerank['maxsum lambda=0.4']['ndcg_change']:+.1%}"},
        {"capability": "interleaving instead of A/B", "moves": "speed of decisions",
         "evidence": "impressions to pick the better ranker 95% of the time (A/B -> interleaving)",
         "before": exp["ab_any_click"], "after": exp["interleaving"]},
    ]


def main(size: int = 0) -> dict[str, Any]:
    heading("1. What each capability moves, and the evidence")
    rows = evidence()
    for r in rows:
        before, after = r["before"], r["after"]
        change = f"{after / before:.2f}x" if after >= before else f"{before / after:.1f}x fewer"
        fmt = "{:,.0f}" if before > 100 else "{:.3f}"
        print(f"{r['capability']} -> {r['moves']}\n    {r['evidence']}: "
              f"{fmt.format(before)} -> {fmt.format(after)} ({change}{', ' + r['cost'] if 'cost' in r else ''})")
    heading("2. Where the figures come from")
    for name in ("search", "recommend", "bundles", "rerank", "tune", "experiments"):
        meta = load(name).get("_meta", {})
        print(f"bench/{name}.py -> bench/results/{name}.json (machine: {str(meta.get('machine', ''))[:60]})")
    heading("3. How to read them")
    print("Offline figures say a change can help; only an experiment on your own traffic says by how much.")
    print("Each 'before' is a peer or baseline run in the same script, on the same public data, same protocol.")
    cuped = load("experiments")["_cuped"]
    print(f"CUPED on Online Retail: {cuped['variance_reduction']:.0%} less variance, the same conclusion "
          f"from fewer shoppers.")
    return {"rows": rows}


# -- exercise -------------------------------------------------------------------------------
def exercise() -> float:
    """YOUR TURN: open ``bench/results/bundles.json`` and compute how many times more often the
    complement model ("complement") finds the hidden item of an Online Retail basket in its top 10
    (``hit@10``) than association rules ("mlxtend_rules"). (The body below is one answer.)"""
    retail = load("bundles")["online_retail"]
    return retail["complement"]["hit@10"] / retail["mlxtend_rules"]["hit@10"]


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Your ratio must match the committed figures."""
    retail = load("bundles")["online_retail"]
    expected = retail["complement"]["hit@10"] / retail["mlxtend_rules"]["hit@10"]
    mine = (solution or exercise)()
    assert abs(mine - expected) < 1e-6, f"you found {mine:.3f}x; the file says {expected:.3f}x"
    print(f"exercise: correct, {mine:.2f}x more baskets completed correctly")


if __name__ == "__main__":
    cli(main, exercise_check, "unused: the lesson reads committed results", 0)
