"""Online experiments on real judgments: how many impressions do A/B testing and
team-draft interleaving need to pick the better of two search rankers?

Simulated shoppers search the Home Depot *test* queries (the half the fusion weights
were not tuned on, split by a hash of the query string as in bench/search.py) and click
by a cascade click model whose probabilities come from the graded judgments:

* the shopper reads the top 10 from the top; at rank i she clicks with probability
  ``P(click | g_i)`` and, after a click, stops with ``P(stop | g_i)``; unjudged products
  have grade 0. ``g = relevance - 1`` in [0, 2] (mean of the raters), probabilities
  interpolated linearly between the grades of the *navigational* model of Hofmann,
  Whiteson and de Rijke (2011/2013): click 0.05 / 0.5 / 0.95, stop 0.2 / 0.5 / 0.9;
  the *informational* model (click 0.4 / 0.7 / 0.9, stop 0.1 / 0.3 / 0.5) is run too.
* A/B: each impression goes to A or B by a fair coin; after N impressions the ranker
  with more clicks per impression wins (also reported: the share of impressions with a
  click). Interleaving: every impression shows the team-draft interleaving of A and B
  (``shopsense.insights.team_draft``); an impression is won by the team with more
  clicks; after N impressions the ranker with more won impressions wins. Ties of the
  decision count as half right.
* The per-query click distributions are computed exactly (all team-draft coin
  sequences are enumerated; a dynamic programme over ranks gives the click counts),
  so each repeated run of N impressions is one multinomial draw: 4,000 runs per N on a
  log grid of N. A direct simulation of shoppers (query draws, coin flips, clicks, the
  library's ``team_draft`` and ``credit``) checks the figures at the N found.

"The better ranker" is the one with the higher offline NDCG@10 on the same queries.
Impressions are randomised one by one (not by shopper), which flatters A/B: real A/B
tests split shoppers, whose impressions are correlated.

Measured (bench/results/experiments.json): with navigational clicks interleaving needed
64 impressions against A/B's 181 for the distant pair (2.8x), 1,092 against 13,735 for
the close pair (12.6x); with informational clicks 1.3x and 0.7x. There A/B on "share of
impressions with a click" is about as sensitive as interleaving because it mostly sees
that bm25 + QU returns an empty list for 15 of 4,113 queries (hybrid never does), not
the order of the results; A/B on clicks per impression needs 205,562 and 4.6 million.
So: one order of magnitude on the close pair under the navigational model, not the
one-to-two orders published, and none when clicks are informational.

    python bench/experiments.py                 # both ranker pairs, both click models
    python bench/experiments.py --no-dense      # lexical pair only (no embeddings needed)

Writes bench/results/experiments.json and bench/results/experiments.png. The first run
builds the Home Depot engine home under --home (embeddings of 54,667 titles).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from shopsense.eval import (
    SearchPeer,
    load_homedepot,
    meta,
    query_split,
    retrieval_scores,
    warm_queries,
    write_json,
)
from shopsense.insights import (
    TEAM_A,
    Experiment,
    Variant,
    assign,
    bootstrap_diff,
    credit,
    cuped,
    team_draft,
)

log = logging.getLogger("bench.experiments")

K = 10
CLICK_MODELS = {
    # grade 0, 1, 2 (relevance 1, 2, 3); Hofmann et al., "Fidelity, soundness, and efficiency
    # of interleaved comparison methods", TOIS 2013, three-grade navigational / informational
    "navigational": {"click": (0.05, 0.5, 0.95), "stop": (0.2, 0.5, 0.9)},
    "informational": {"click": (0.4, 0.7, 0.9), "stop": (0.1, 0.3, 0.5)},
}
SEEDS = {"runs": 20240301, "direct_check": 7, "split": 0}
N_GRID = np.unique(np.round(np.logspace(1, 7.5, 79)).astype(np.int64))
RUNS = 4000


# -- rankings -----------------------------------------------------------------------------

def rankings(home: Path, dense: bool) -> tuple[dict[str, list[np.ndarray]], list[dict[int, float]], list[str],
                                               dict[str, Any]]:
    """Top-10 product rows per held-out query for each ranker, the gains, the queries."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from shopsense.engine import Engine
    from shopsense.search import SearchOptions, SearchService

    bench = load_homedepot()
    _, test_idx = query_split(bench.queries, test_fraction=0.5, seed=SEEDS["split"])
    test = bench.subset(test_idx)
    eng = Engine(home)
    if eng.store.count_products() != len(bench.products):
        eng.add_products(bench.products)
    if eng.store.product_ids() != [p.id for p in bench.products]:
        raise SystemExit(f"{home} holds another catalogue; pass an empty --home")
    svc = SearchService(eng, dense=dense)
    t0 = time.time()
    searcher = svc.searcher
    log.info("index ready in %.1fs", time.time() - t0)
    base = SearchOptions()  # the defaults: fusion weights tuned on the dev half (bench/search.py)
    systems: dict[str, Any] = {"bm25s peer": None, "bm25 + QU": replace(base, mode="bm25", understand=True)}
    if dense:
        systems["hybrid + QU"] = replace(base, mode="hybrid", fusion="weighted", understand=True)
    if dense:  # encode every query once, in batches (the encoder's cache then serves them)
        warm_queries(searcher, test.queries)
    peer = SearchPeer(bench.products)
    out: dict[str, list[np.ndarray]] = {}
    for name, opts in systems.items():
        t0 = time.time()
        if opts is None:
            out[name] = [np.asarray(peer.rank(q, K))[:K] for q in test.queries]
        else:
            out[name] = [np.asarray(searcher.rank(q, k=K, options=opts))[:K] for q in test.queries]
        log.info("%s: %d queries ranked in %.1fs", name, len(test.queries), time.time() - t0)
    ndcg = {name: float(retrieval_scores(r, test.gains)["ndcg@10"].mean()) for name, r in out.items()}
    lengths = {name: {"mean": float(np.mean([len(x) for x in r])), "empty": int(sum(len(x) == 0 for x in r)),
                      "shorter_than_k": int(sum(len(x) < K for x in r))} for name, r in out.items()}
    log.info("list lengths: %s", lengths)
    ndcg = {"ndcg@10": ndcg, "list_length": lengths}
    eng.close()
    return out, test.gains, test.queries, ndcg


# -- exact click distributions ------------------------------------------------------------

def probs(model: str, grades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = CLICK_MODELS[model]
    return np.interp(grades, [0, 1, 2], m["click"]), np.interp(grades, [0, 1, 2], m["stop"])


def clicks_distribution(pc: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """P(number of clicks = c), c = 0..K, for one list under the cascade model."""
    scanning = np.zeros(K + 2)
    scanning[0] = 1.0
    done = np.zeros(K + 2)
    for c_i, s_i in zip(pc, ps):
        clicked = np.roll(scanning, 1) * c_i
        done += clicked * s_i
        scanning = scanning * (1 - c_i) + clicked * (1 - s_i)
    return (scanning + done)[:K + 1]


def interleavings(a: list[int], b: list[int]) -> list[tuple[float, list[int], list[int]]]:
    """Every team-draft interleaving of ``a`` and ``b`` (top K) with its probability."""
    out = []

    def go(items: list[int], teams: list[int], picks: tuple[int, int], p: float) -> None:
        n = min(K, len(set(a) | set(b)))
        if len(items) >= n:
            out.append((p, items, teams))
            return
        if picks[0] != picks[1]:
            orders = [(TEAM_A if picks[0] < picks[1] else 1 - TEAM_A, 1.0)]
        else:
            orders = [(0, 0.5), (1, 0.5)]
        for team, w in orders:
            for t in (team, 1 - team):
                lst = (a, b)[t]
                nxt = next((x for x in lst if x not in items), None)
                if nxt is not None:
                    pk = list(picks)
                    pk[t] += 1
                    go([*items, nxt], [*teams, t], (pk[0], pk[1]), p * w)
                    break

    go([], [], (0, 0), 1.0)
    return out


def interleave_outcome(pc: np.ndarray, ps: np.ndarray, teams: list[int]) -> np.ndarray:
    """P(A wins), P(B wins), P(tie) of one interleaved list (clicks credited by team)."""
    size = 2 * K + 1
    scanning = np.zeros(size)
    scanning[K] = 1.0  # index K: clicks(A) - clicks(B) = 0
    done = np.zeros(size)
    for c_i, s_i, t in zip(pc, ps, teams):
        clicked = np.roll(scanning, 1 if t == TEAM_A else -1) * c_i
        done += clicked * s_i
        scanning = scanning * (1 - c_i) + clicked * (1 - s_i)
    final = scanning + done
    return np.array([final[K + 1:].sum(), final[:K].sum(), final[K]])


def distributions(rank_a: list[np.ndarray], rank_b: list[np.ndarray], gains: list[dict[int, float]], model: str,
                  merged: list[list[tuple[float, list[int], list[int]]]]) -> dict[str, Any]:
    """Mixtures over queries (uniform): clicks per impression of A and of B, and the
    interleaving outcome distribution (``merged``: every query's interleavings)."""
    pa, pb, pi = np.zeros(K + 1), np.zeros(K + 1), np.zeros(3)
    for ra, rb, g, inter in zip(rank_a, rank_b, gains, merged):
        pa += clicks_distribution(*probs(model, np.array([g.get(int(r), 0.0) for r in ra])))
        pb += clicks_distribution(*probs(model, np.array([g.get(int(r), 0.0) for r in rb])))
        for p, items, teams in inter:
            pi += p * interleave_outcome(*probs(model, np.array([g.get(i, 0.0) for i in items])), teams)
    n = len(gains)
    return {"a": pa / n, "b": pb / n, "interleave": pi / n}


# -- repeated runs ------------------------------------------------------------------------

def correct_rates(d: dict[str, Any], a_better: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Share of ``RUNS`` repeated experiments of N impressions (each N of the grid) that
    pick the better ranker, for A/B (two metrics) and interleaving."""
    counts = np.arange(K + 1)
    out = {"ab_clicks": [], "ab_any_click": [], "interleaving": []}
    for n in N_GRID:
        na = rng.binomial(n, 0.5, size=RUNS)
        nb = n - na
        ca = rng.multinomial(na, d["a"])
        cb = rng.multinomial(nb, d["b"])
        with np.errstate(invalid="ignore", divide="ignore"):
            for key, va, vb in (("ab_clicks", ca @ counts, cb @ counts),
                                ("ab_any_click", na - ca[:, 0], nb - cb[:, 0])):
                ma, mb = va / np.maximum(na, 1), vb / np.maximum(nb, 1)
                ma[na == 0] = mb[na == 0]  # an empty arm decides nothing: a tie
                mb[nb == 0] = ma[nb == 0]
                out[key].append(_score(ma - mb, a_better))
        w = rng.multinomial(n, d["interleave"], size=RUNS)
        out["interleaving"].append(_score(w[:, 0] - w[:, 1], a_better))
    return {k: np.array(v) for k, v in out.items()}


def _score(diff: np.ndarray, a_better: bool) -> float:
    right = (diff > 0) if a_better else (diff < 0)
    return float(right.mean() + 0.5 * (diff == 0).mean())


def needed(rates: np.ndarray, target: float = 0.95) -> float | None:
    """Smallest N on the grid from which the correct rate stays >= target (log-interpolated)."""
    ok = rates >= target
    if not ok[-1]:
        return None
    i = len(ok) - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    if i == 0:
        return float(N_GRID[0])
    x0, x1 = np.log(N_GRID[i - 1]), np.log(N_GRID[i])
    y0, y1 = rates[i - 1], rates[i]
    return float(np.exp(x0 + (target - y0) / (y1 - y0) * (x1 - x0))) if y1 != y0 else float(N_GRID[i])


# -- direct simulation (the check) -------------------------------------------------------

def simulate_clicks(grades: np.ndarray, model: str, rng: np.random.Generator) -> list[int]:
    pc, ps = probs(model, grades)
    clicks = []
    for i in range(len(grades)):
        if rng.random() < pc[i]:
            clicks.append(i + 1)
            if rng.random() < ps[i]:
                break
    return clicks


def direct_check(rank_a: list[np.ndarray], rank_b: list[np.ndarray], gains: list[dict[int, float]], model: str,
                 a_better: bool, n_interleave: int, n_ab: int, runs: int, seed: int) -> dict[str, Any]:
    """Shoppers one by one: query draw, coin flips of team_draft, cascade clicks, credit."""
    rng = np.random.default_rng(seed)
    nq = len(gains)
    t0 = time.time()
    right = 0.0
    for _ in range(runs):
        total = 0
        for q in rng.integers(nq, size=n_interleave):
            r = team_draft([int(x) for x in rank_a[q]], [int(x) for x in rank_b[q]], k=K, rng=rng)
            grades = np.array([gains[q].get(i, 0.0) for i in r.items])
            total += credit(r.teams, simulate_clicks(grades, model, rng))
        right += (total > 0) == a_better if total else 0.5
    inter = right / runs
    # A/B: vectorised over impressions (same cascade); fewer runs when N is large
    ab_runs = int(min(runs, max(20, 4e7 // max(n_ab, 1))))
    right = 0.0
    # a list shorter than K has nothing below its end: NaN grades are never clicked
    ga = [np.array([g.get(int(r), 0.0) for r in ra] + [np.nan] * (K - len(ra))) for ra, g in zip(rank_a, gains)]
    gb = [np.array([g.get(int(r), 0.0) for r in rb] + [np.nan] * (K - len(rb))) for rb, g in zip(rank_b, gains)]
    GA, GB = np.stack(ga), np.stack(gb)
    for _ in range(ab_runs):
        arm = rng.random(n_ab) < 0.5
        q = rng.integers(nq, size=n_ab)
        grades = np.where(arm[:, None], GA[q], GB[q])
        pc, ps = probs(model, np.nan_to_num(grades))
        pc[np.isnan(grades)] = 0.0
        scanning = np.ones(n_ab, bool)
        clicks = np.zeros(n_ab)
        for i in range(K):
            c = scanning & (rng.random(n_ab) < pc[:, i])
            clicks += c
            scanning &= ~(c & (rng.random(n_ab) < ps[:, i]))
        diff = clicks[arm].mean() - clicks[~arm].mean()
        right += ((diff > 0) == a_better) if diff else 0.5
    return {"runs": runs, "seed": seed, "interleaving_impressions": n_interleave,
            "interleaving_correct": inter, "ab_impressions": n_ab, "ab_runs": ab_runs,
            "ab_clicks_correct": float(right / ab_runs),
            "seconds": round(time.time() - t0, 1)}


# -- CUPED on a real event log -------------------------------------------------------------

def cuped_online_retail(root: Path) -> dict[str, Any]:
    """Invoices per customer in Sep-Dec 2011 with the same in Mar-Aug 2011 as the CUPED
    covariate (UCI Online Retail, the 40,000-row random sample); an A/A split by the
    experiment hash shows the narrower interval."""
    path = root / "baskets" / "online-retail" / "online_retail_random40k_rows.csv"
    pre: dict[str, set[str]] = {}
    post: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if not r["CustomerID"]:
                continue
            t = datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S")
            if t >= datetime(2011, 9, 1):
                post.setdefault(r["CustomerID"], set()).add(r["InvoiceNo"])
            elif t >= datetime(2011, 3, 1):
                pre.setdefault(r["CustomerID"], set()).add(r["InvoiceNo"])
    users = sorted(post)
    y = np.array([len(post[u]) for u in users], float)
    x = np.array([len(pre.get(u, ())) for u in users], float)
    adj, theta, reduction = cuped(y, x)
    exp = Experiment(name="aa", variants=[Variant(name="A"), Variant(name="B")], salt="bench")
    b = np.array([assign(exp, u) == "B" for u in users])
    plain = bootstrap_diff(y[~b], y[b], n_boot=2000, seed=0)
    adjusted = bootstrap_diff(adj[~b], adj[b], n_boot=2000, seed=0)
    return {"file": str(path), "customers": len(users), "metric": "invoices per customer, 2011-09-01..2011-12-09",
            "covariate": "invoices per customer, 2011-03-01..2011-08-31", "theta": theta,
            "variance_reduction": reduction, "aa_interval_plain": plain.as_dict(),
            "aa_interval_cuped": adjusted.as_dict(),
            "interval_width_ratio": (adjusted.high - adjusted.low) / (plain.high - plain.low)}


# -- main --------------------------------------------------------------------------------------

def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = [(pair, model, r) for pair, models in results.items() if not pair.startswith("_")
            for model, r in models.items()]
    cols = 2
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax, (pair, model, r) in zip(axes.flat, runs):
        for key, label, color in (("interleaving", "team-draft interleaving", "#0b6e4f"),
                                  ("ab_clicks", "A/B: clicks per impression", "#c05621"),
                                  ("ab_any_click", "A/B: impressions with a click", "#2a6f97")):
            ax.plot(r["curve"]["n"], r["curve"][key], label=label, color=color)
            n95 = r["impressions_for_95"][key]
            if n95:
                ax.axvline(n95, color=color, ls=":", lw=1)
        ax.axhline(0.95, color="#999", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(0.45, 1.01)
        ax.set_xlabel("impressions (log scale)")
        ax.set_ylabel("share of runs picking the better ranker")
        f = r["factor_ab_over_interleaving"]
        n = r["impressions_for_95"]
        ab = min((v for k, v in n.items() if k.startswith("ab_") and v), default=None)
        ax.set_title(f"{pair} (NDCG@10 {r['ndcg@10']['a']:.3f} vs {r['ndcg@10']['b']:.3f}), {model} clicks\n"
                     f"95% right: interleaving {n['interleaving']:,.0f}, best A/B {ab:,.0f} impressions "
                     f"({f:.1f}x)" if f else f"{pair}\n{model}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/shopsense-bench/homedepot_home"),
                    help="engine home of the Home Depot catalogue (built on first use, then reused)")
    ap.add_argument("--no-dense", action="store_true", help="lexical rankers only (no embeddings)")
    ap.add_argument("--check-runs", type=int, default=200, help="repeated runs of the direct simulation")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "experiments.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t_start = time.time()
    ranks, gains, queries, offline = rankings(args.home, dense=not args.no_dense)
    ndcg = offline["ndcg@10"]
    pairs = [("bm25s peer", "hybrid + QU"), ("bm25 + QU", "hybrid + QU")] if not args.no_dense \
        else [("bm25s peer", "bm25 + QU")]
    results: dict[str, Any] = {}
    rng = np.random.default_rng(SEEDS["runs"])
    for a, b in pairs:
        pair = f"{a} vs {b}"
        results[pair] = {}
        a_better = ndcg[a] > ndcg[b]
        merged = [interleavings([int(x) for x in ra], [int(x) for x in rb]) for ra, rb in zip(ranks[a], ranks[b])]
        for model in CLICK_MODELS:
            t0 = time.time()
            d = distributions(ranks[a], ranks[b], gains, model, merged)
            rates = correct_rates(d, a_better, rng)
            n95 = {k: needed(v) for k, v in rates.items()}
            ab = min((v for k, v in n95.items() if k.startswith("ab_") and v), default=None)
            factor = ab / n95["interleaving"] if ab and n95["interleaving"] else None
            exp_clicks = {"a": float(d["a"] @ np.arange(K + 1)), "b": float(d["b"] @ np.arange(K + 1))}
            results[pair][model] = {
                "ndcg@10": {"a": ndcg[a], "b": ndcg[b]}, "better": a if a_better else b,
                "expected_clicks_per_impression": exp_clicks,
                "click_rate": {"a": float(1 - d["a"][0]), "b": float(1 - d["b"][0])},
                "interleaving_outcome": {"a_wins": float(d["interleave"][0]), "b_wins": float(d["interleave"][1]),
                                         "tie": float(d["interleave"][2])},
                "impressions_for_95": n95, "factor_ab_over_interleaving": factor,
                "curve": {"n": N_GRID.tolist(), **{k: v.tolist() for k, v in rates.items()}},
                "seconds": round(time.time() - t0, 1),
            }
            log.info("%s (%s): N95 interleaving %s, A/B clicks %s, A/B any click %s -> %.1fx", pair, model,
                     n95["interleaving"], n95["ab_clicks"], n95["ab_any_click"], factor or float("nan"))
            if args.check_runs and n95["interleaving"] and n95["ab_clicks"] and model == "navigational":
                results[pair][model]["direct_check"] = direct_check(
                    ranks[a], ranks[b], gains, model, a_better, round(n95["interleaving"]),
                    round(n95["ab_clicks"]), args.check_runs, SEEDS["direct_check"])
                log.info("direct check: %s", results[pair][model]["direct_check"])
    cuped_res = cuped_online_retail(Path(os.environ.get("SHOPSENSE_DATASETS", HERE.parent.parent / "shared" /
                                                        "datasets")))
    results["_cuped"] = cuped_res
    m = meta(__doc__.split("\n\n")[1].replace("\n", " "), dataset="homedepot (test half of the queries)",
             queries=len(queries), k=K, click_models=CLICK_MODELS, seeds=SEEDS, runs_per_n=RUNS,
             n_grid=[int(N_GRID[0]), int(N_GRID[-1]), len(N_GRID)], ndcg_at_10=ndcg,
             list_length=offline["list_length"],
             impressions="total over both arms (A/B) or interleaved lists shown; randomised per impression",
             decision="A/B: higher mean per impression; interleaving: more impressions won; ties count half",
             total_seconds=round(time.time() - t_start, 1))
    write_json(results, args.out, m)
    png = plot(results, args.out.with_suffix(".png"))
    print(f"{'pair':38} {'click model':14} {'interleaving':>12} {'A/B clicks':>12} {'A/B any':>12} {'factor':>7}")
    for pair, models in results.items():
        if pair.startswith("_"):
            continue
        for model, r in models.items():
            n = r["impressions_for_95"]

            def f(v: float | None) -> str:
                return f"{v:,.0f}" if v else "> grid"

            print(f"{pair:38} {model:14} {f(n['interleaving']):>12} {f(n['ab_clicks']):>12} "
                  f"{f(n['ab_any_click']):>12} {r['factor_ab_over_interleaving'] or float('nan'):>6.1f}x")
    print(f"CUPED on Online Retail: variance -{cuped_res['variance_reduction']:.1%}, "
          f"A/A interval width x{cuped_res['interval_width_ratio']:.2f}")
    print(f"wrote {args.out}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
