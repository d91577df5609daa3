"""Lesson 7: measuring. Offline evaluation, A/B tests and interleaving.

Two rankers on the Home Depot queries (Kaggle, competition rules): bm25s with its defaults
and shopsense's BM25 with query understanding. First offline, on judgments; then online,
with simulated shoppers who click down the list as the judgments say (a cascade model),
shown either one ranker (A/B) or both interleaved (team draft). Last, the checks an
experiment needs on real logs: sample-ratio mismatch, and CUPED on the Online Retail
invoices (CC BY 4.0).

    python docs/lessons/07_measure.py [--size 1500] [--check]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from _course import cli, heading, new_home, table

from shopsense import Engine
from shopsense.datasets import dataset_file
from shopsense.eval import SearchPeer, load_homedepot
from shopsense.eval import bootstrap_diff as paired_diff
from shopsense.insights import (
    Experiment,
    Variant,
    assign,
    bootstrap_diff,
    credit,
    cuped,
    preference,
    srm_check,
    team_draft,
)
from shopsense.metrics import ndcg_at_k
from shopsense.search import SearchService


def clicks(gains: Sequence[float], rng: np.random.Generator) -> list[int]:
    """A shopper scanning down a list (cascade model): clicks a result with a probability that
    grows with its judged gain (0..2), and after a click stops with probability 0.6.
    Returns the 1-based positions clicked."""
    out = []
    for pos, g in enumerate(gains, start=1):
        if rng.random() < 0.02 + 0.2 * g:
            out.append(pos)
            if rng.random() < 0.6:
                break
    return out


def main(size: int = 1500, shoppers: int = 2000) -> dict[str, Any]:
    heading("1. Offline: the same judged queries, two rankers")
    bench = load_homedepot(max_products=size)
    row = {p.id: i for i, p in enumerate(bench.products)}
    peer = SearchPeer(bench.products)
    eng = Engine(new_home("lesson7"))
    eng.add_products(bench.products)
    ours = SearchService(eng, dense=False)  # BM25 and query understanding only: no encoder needed
    ours.build()
    lists = {
        "A: bm25s defaults": [peer.rank(q, 10).tolist() for q in bench.queries],
        "B: shopsense bm25 + QU": [[row[h.id] for h in ours.search(q, k=10, mode="bm25").hits] for q in bench.queries],
    }
    per_query = {name: np.array([ndcg_at_k(r, g, 10) for r, g in zip(ranked, bench.gains)])
                 for name, ranked in lists.items()}
    a, b = per_query.values()
    diff, lo, hi = paired_diff(a, b)
    table([{"ranker": name, "NDCG@10": float(v.mean())} for name, v in per_query.items()])
    print(f"B - A = {diff:+.4f}, 95% interval [{lo:+.4f}, {hi:+.4f}] over {len(a)} queries (paired bootstrap)")

    heading("2. Online, simulated: A/B against interleaving, same number of shoppers")
    rng = np.random.default_rng(0)
    lists_a, lists_b = lists.values()
    ab: dict[str, list[float]] = {"A": [], "B": []}
    outcomes = []
    for s in range(shoppers):
        q = int(rng.integers(len(bench.queries)))
        gains = bench.gains[q]
        arm = "A" if s % 2 == 0 else "B"
        shown = lists_a[q] if arm == "A" else lists_b[q]
        ab[arm].append(float(len(clicks([gains.get(r, 0.0) for r in shown], rng)) > 0))
        mixed = team_draft(lists_a[q], lists_b[q], k=10, rng=rng)
        outcomes.append(credit(mixed.teams, clicks([gains.get(r, 0.0) for r in mixed.items], rng)))
    ab_diff = bootstrap_diff(ab["A"], ab["B"])
    pref = preference(outcomes)
    print(f"A/B: click-through A {np.mean(ab['A']):.3f}, B {np.mean(ab['B']):.3f}; "
          f"B - A = {ab_diff.estimate:+.3f} [{ab_diff.low:+.3f}, {ab_diff.high:+.3f}]")
    print(f"interleaving: B wins {pref['wins_b']}, A wins {pref['wins_a']}, ties {pref['ties']}; "
          f"sign test p = {pref['p_value']:.2g}")

    heading("3. Is the split itself healthy? Sample-ratio mismatch")
    exp = Experiment(name="ranker", variants=[Variant(name="A"), Variant(name="B")], salt="lesson7")
    arms = [assign(exp, f"u{i}") for i in range(20_000)]  # sticky: a hash of salt, name and user
    observed = {v: arms.count(v) for v in ("A", "B")}
    healthy = srm_check(observed, exp.shares())
    # a logging bug that loses 5% of B's shoppers
    broken = srm_check({"A": observed["A"], "B": int(observed["B"] * 0.95)}, exp.shares())
    print(f"assigned {observed}: p = {healthy.p_value:.3f}, mismatch {healthy.mismatch}")
    print(f"B loses 5% in logging: p = {broken.p_value:.2g}, mismatch {broken.mismatch}")

    heading("4. CUPED: less noise from the same shoppers' past")
    rows = pd.read_csv(dataset_file("baskets", "online-retail", "online_retail_random40k_rows.csv"),
                       dtype={"CustomerID": str})
    rows = rows[(rows.Quantity > 0) & rows.CustomerID.notna()]
    rows["spend"] = rows.Quantity * rows.UnitPrice
    late = rows.InvoiceDate >= "2011-07-01"
    per = pd.DataFrame({"pre": rows[~late].groupby("CustomerID").spend.sum(),
                        "post": rows[late].groupby("CustomerID").spend.sum()}).fillna(0.0)
    per = per[per.post > 0]
    _, theta, reduction = cuped(per.post.to_numpy(), per.pre.to_numpy())
    print(f"{len(per)} customers: spend after July 2011 adjusted by their spend before it, "
          f"theta {theta:.3f}, variance -{reduction:.1%}")
    eng.close()
    return {"offline": (diff, lo, hi), "ab": ab_diff, "interleaving": pref, "srm": (healthy, broken),
            "cuped": reduction}


# -- exercise -------------------------------------------------------------------------------
def exercise(teams: Sequence[int], clicked: Sequence[int]) -> int:
    """YOUR TURN: score one interleaved impression. ``teams[i]`` says which ranker placed
    position i + 1 (``shopsense.insights.TEAM_A`` or ``TEAM_B``); ``clicked`` are the 1-based
    positions the shopper clicked. Return +1 when A's items got more clicks, -1 when B's did,
    0 for a tie. (The body below is one answer.)"""
    from shopsense.insights import TEAM_A

    a = sum(1 for p in clicked if teams[p - 1] == TEAM_A)
    b = len(clicked) - a
    return (a > b) - (b > a)


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Your credit must agree with ``shopsense.insights.credit`` on 2,000 random impressions."""
    rng = np.random.default_rng(7)
    fn = solution or exercise
    for _ in range(2000):
        mixed = team_draft(list(range(10)), list(rng.permutation(10)), k=10, rng=rng)
        clicked = sorted(set(rng.integers(1, 11, size=int(rng.integers(0, 4))).tolist()))
        mine, theirs = fn(mixed.teams, clicked), credit(mixed.teams, clicked)
        assert mine == theirs, f"teams {mixed.teams}, clicks {clicked}: you said {mine}, credit says {theirs}"
    print("exercise: correct on 2,000 random impressions")


if __name__ == "__main__":
    cli(main, exercise_check, "products in the slice (the first judged queries' products)", 1500)
