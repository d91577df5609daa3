"""Recommendation serving latency on Amazon Beauty: precomputed lists and online fold-in
against full scoring and against the library limit, at 1x and 10x the items.

    python bench/recommend_serving.py                 # ~15-25 min on a busy 2-core machine (first run builds)
    python bench/recommend_serving.py --quick         # smoke run: fewer calls, the same homes

In process, no HTTP: ``Engine.recommend(user, k=10)`` (history read from the store, the
recommender, the finishing stage with products and reasons) called one at a time and
from 32 threads. Three kinds of call, each on its own users so every call is the user's
first (cold history cache, store read included):

- ``known``: a Beauty user whose history is unchanged since training (precomputed list);
- ``fresh``: a known user right after one new event (written untimed; folded in online);
- ``new``: a user unseen at training with three events (folded in online).

``service known`` times ``RecommendService.recommend`` alone (no finishing stage), on
other known users, to show what the engine's finishing stage adds.

Peers in the same run and process: ``full`` (``precomputed=False``: the primary model and
every explaining generator score every item, as every call did before) and ``limit``: the
primary model's raw top-10 on its own arrays for the same users' histories (EASE: sum of
the history rows of B, argpartition; item-kNN: the same on the sparse similarity rows) -
no store, no explanations, no products.

SCALE SIMULATION, stated as such: ``x10`` replicates each of Beauty's 12,101 items 10
times (ids ``<asin>~<copy>``) and maps every user, with all of their real events, to one
random copy (seed 0), so the catalogue is 10x larger while each user's history, length
and co-occurrences stay real (each item copy has about a tenth of the users). Beauty has
no item text, so no content model is trained (``content=False``); SASRec is skipped for
the 2-core budget (``sasrec=False``) and so is the ranker unless ``--stack``. The scale
comparison uses item-kNN at both sizes (EASE inverts an n x n matrix: bounded to 30k
items); EASE, the default primary at 12k items, is measured at 1x too.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one thread: multi-threaded BLAS on a shared CPU only oversubscribes

import argparse
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
K = 10


def build_home(home: Path, copies: int, primary: str, stack: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Products and events of Beauty (``copies`` x the items) into a home, trained once;
    returns the model manifest (cached: a built home is reused)."""
    from shopsense.catalog import Event, Product
    from shopsense.datasets import SEQUENCE_EPOCH, load_amazon_sequences
    from shopsense.engine import Engine

    done = home / "bench-built.json"
    if done.exists():
        return json.loads(done.read_text())
    seqs = load_amazon_sequences("beauty")
    items = seqs.item_ids()
    rng = np.random.default_rng(0)
    user_copy = rng.integers(0, copies, len(seqs))
    t0 = time.perf_counter()
    with Engine(home) as eng:
        if eng.store.count_products() == 0:
            products = [Product(id=item_id(a, j, copies), title=f"Beauty product {item_id(a, j, copies)}")
                        for j in range(copies) for a in items]
            for s in range(0, len(products), 20000):
                eng.add_products(products[s:s + 20000])
            batch: list[Event] = []
            n = 0
            for u, (uid, seq) in enumerate(seqs):
                for a in seq:
                    ts = datetime.fromtimestamp(SEQUENCE_EPOCH + n, tz=UTC)
                    batch.append(Event(user_id=str(uid), item_id=item_id(a, int(user_copy[u]), copies),
                                       type="purchase", timestamp=ts))
                    n += 1
                if len(batch) >= 20000:
                    eng.add_events(batch)
                    batch = []
            if batch:
                eng.add_events(batch)
        ingest_s = time.perf_counter() - t0
        say(f"  ingested {eng.store.count_products():,} products, {eng.store.count_events():,} events "
            f"in {ingest_s:.0f}s")
        t1 = time.perf_counter()
        manifest = eng.train(progress=say, sasrec=False, ranker=stack, content=False,
                             ease_max_items=30000 if primary == "ease" else 0)
        manifest["bench_train_seconds"] = time.perf_counter() - t1
        manifest["bench_ingest_seconds"] = ingest_s
        manifest["bench_user_copy"] = {str(uid): int(c) for (uid, _), c in zip(seqs, user_copy)}
    done.write_text(json.dumps(manifest))
    return manifest


def item_id(asin: str, copy: int, copies: int) -> str:
    return asin if copies == 1 else f"{asin}~{copy}"


def stats(lat: list[float], wall: float) -> dict[str, float]:
    a = np.asarray(lat) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "calls_per_s": len(a) / wall,
            "calls": len(a)}


def timed(fn: Callable[[Any], Any], args: list[Any], clients: int = 1) -> dict[str, float]:
    def one(a: Any) -> float:
        t = time.perf_counter()
        fn(a)
        return time.perf_counter() - t

    t0 = time.perf_counter()
    if clients == 1:
        lat = [one(a) for a in args]
    else:
        with ThreadPoolExecutor(clients) as pool:
            lat = list(pool.map(one, args))
    return stats(lat, time.perf_counter() - t0)


def limit_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The primary model's raw top-K on its own arrays for one history (no store, no
    explanations, no products): what a recommendation costs at the very least."""
    name = type(model).__name__
    if name == "EASE":
        b = model.B_

        def ease(h: np.ndarray) -> np.ndarray:
            s = b[np.unique(h)].sum(0)
            top = np.argpartition(-s, K)[:K]
            return top[np.argsort(-s[top])]
        return ease
    if name == "ItemKNN":
        sim = model.S_.tocsr()

        def knn(h: np.ndarray) -> np.ndarray:
            s = np.asarray(sim[h].sum(0)).ravel()
            top = np.argpartition(-s, K)[:K]
            return top[np.argsort(-s[top])]
        return knn
    return lambda h: model.recommend([h], K, exclude=False).indices[0]


def run_home(name: str, home: Path, manifest: dict[str, Any], users: dict[str, list[str]], args: argparse.Namespace,
             say: Callable[[str], None]) -> dict[str, dict[str, float]]:
    from shopsense.datasets import SEQUENCE_EPOCH, load_amazon_sequences
    from shopsense.engine import Engine

    copies = int(manifest["bench_copies"])
    user_copy = manifest["bench_user_copy"]
    seqs = {str(u): list(s) for u, s in load_amazon_sequences("beauty")}
    out: dict[str, dict[str, float]] = {}
    with Engine(home) as eng:
        svc = eng.recommender
        models = svc.models()
        primary = models[manifest["primary"]]
        index = {pid: i for i, pid in enumerate(json.loads((home / "models" / manifest["version"] /
                                                           "item_ids.json").read_text()))}
        eng.recommend(users["warm"][0], k=K)  # load the models once, untimed
        for _ in range(2):
            eng.recommend(users["warm"][1], k=K, precomputed=False)

        def hist(u: str) -> np.ndarray:
            return np.array([index[item_id(a, user_copy[u], copies)] for a in seqs[u]], np.int64)

        limit = limit_fn(primary)
        for u in users["warm"][:20]:
            limit(hist(u))
        out["limit known"] = timed(limit, [hist(u) for u in users["known_served"]])
        say(f"  {name} limit: {fmt(out['limit known'])}")

        def check(path: str) -> Callable[[Any], Any]:
            def call(a: Any) -> Any:
                u, pre = a
                r = eng.recommend(u, k=K, precomputed=pre)
                if r.info.get("path") != path:
                    raise AssertionError(f"{u}: expected the {path} path, got {r.info.get('path')}")
                return r
            return call

        out["served known"] = timed(check("precomputed"), [(u, True) for u in users["known_served"]])
        # the recommender alone (no finishing stage: products, rules, reasons), on other users
        out["service known"] = timed(lambda u: svc.recommend(u, k=K), users["known_service"])
        out["full known"] = timed(check("full"), [(u, False) for u in users["known_full"]])
        rng = np.random.default_rng(1)
        all_users = list(seqs)

        def fresh_event(u: str) -> None:
            donor = seqs[all_users[int(rng.integers(len(all_users)))]]
            a = donor[int(rng.integers(len(donor)))]
            last = eng.store.events(user_id=u).timestamp[-1]
            eng.add_events([{"user_id": u, "item_id": item_id(a, user_copy[u], copies), "type": "purchase",
                             "timestamp": float(last) + 60.0}])

        def new_user(u: str) -> None:
            donor = seqs[all_users[int(rng.integers(len(all_users)))]]
            copy = int(rng.integers(copies))
            eng.add_events([{"user_id": u, "item_id": item_id(a, copy, copies), "type": "purchase",
                             "timestamp": SEQUENCE_EPOCH + 10_000_000 + j} for j, a in enumerate(donor[:3])])

        for u in users["fresh_served"] + users["fresh_full"]:
            fresh_event(u)
        news = [f"bench-new-{i}" for i in range(2 * args.new)]
        for u in news:
            new_user(u)
        out["served fresh"] = timed(check("candidates"), [(u, True) for u in users["fresh_served"]])
        out["full fresh"] = timed(check("full"), [(u, False) for u in users["fresh_full"]])
        out["served new"] = timed(check("candidates"), [(u, True) for u in news[: args.new]])
        out["full new"] = timed(check("full"), [(u, False) for u in news[args.new:]])
        c = args.clients
        out[f"served known c{c}"] = timed(check("precomputed"), [(u, True) for u in users["known_c"]], clients=c)
        out[f"full known c{c}"] = timed(check("full"), [(u, False) for u in users["known_c_full"]], clients=c)
        for key, v in out.items():
            say(f"  {name} {key}: {fmt(v)}")
    return out


def fmt(v: dict[str, float]) -> str:
    return (f"p50 {v['p50_ms']:.2f} ms, p95 {v['p95_ms']:.2f}, p99 {v['p99_ms']:.2f}, "
            f"{v['calls_per_s']:.0f} calls/s ({v['calls']} calls)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/shopsense-bench-recserve"),
                    help="engine homes are built here once and reused")
    ap.add_argument("--known", type=int, default=2000, help="known users per path (1 client)")
    ap.add_argument("--fresh", type=int, default=500, help="users with a fresh event per path")
    ap.add_argument("--new", type=int, default=500, help="new users per path")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--concurrent", type=int, default=2000, help="calls at --clients threads, per path")
    ap.add_argument("--homes", nargs="+", default=["x1-ease", "x1-itemknn", "x10-itemknn"],
                    help="x<copies>-<primary>: ease or itemknn")
    ap.add_argument("--stack", action="store_true", help="also train the LambdaMART ranker (primary: stack)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200/50/50 calls per path")
    ap.add_argument("--out", type=Path, default=RESULTS / "recommend_serving.json")
    args = ap.parse_args()
    if args.quick:
        args.known, args.fresh, args.new, args.concurrent = 200, 50, 50, 200
    logging.basicConfig(level=logging.WARNING)
    from shopsense.datasets import load_amazon_sequences
    from shopsense.eval import meta, print_table, write_json

    def say(m: str) -> None:
        print(m, flush=True)

    load_start = os.getloadavg()
    user_ids = [str(u) for u, _ in load_amazon_sequences("beauty")]
    rng = np.random.default_rng(0)
    order = [user_ids[i] for i in rng.permutation(len(user_ids))]
    sizes = {"warm": 2, "known_served": args.known, "known_service": args.known, "known_full": args.known,
             "fresh_served": args.fresh,
             "fresh_full": args.fresh, "known_c": args.concurrent, "known_c_full": args.concurrent}
    users, at = {}, 0
    for key, n in sizes.items():  # disjoint samples: every timed call is the user's first
        users[key] = order[at:at + n]
        at += n
    results: dict[str, dict[str, dict[str, float]]] = {}
    trained: dict[str, Any] = {}
    for spec in args.homes:
        copies, primary = int(spec.split("-")[0][1:]), spec.split("-")[1]
        name = f"beauty-{spec}" + ("-stack" if args.stack else "")
        home = args.cache / name / "home"
        say(f"== {name}: {copies}x items, primary {'stack over ' if args.stack else ''}{primary}")
        manifest = build_home(home, copies, primary, args.stack, say)
        manifest["bench_copies"] = copies
        trained[name] = {"primary": manifest["primary"], "models": manifest["models"],
                         "n_items": manifest["n_items"], "n_users": manifest["n_users"],
                         "n_interactions": manifest["n_interactions"],
                         "train_seconds": round(manifest["bench_train_seconds"], 1),
                         "precompute_seconds": manifest["precomputed"]["seconds"],
                         "ingest_seconds": round(manifest["bench_ingest_seconds"], 1)}
        # a fresh copy of the trained home per run: the timed calls write events
        run_dir = args.cache / name / "run"
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(home, run_dir)
        results[name] = run_home(name, run_dir, manifest, users, args, say)
        shutil.rmtree(run_dir, ignore_errors=True)

    c = args.clients
    ratios: dict[str, Any] = {}
    for name, systems in results.items():
        lim = systems["limit known"]["calls_per_s"]
        ratios[name] = {
            "served_known_calls_per_s_over_limit": systems["served known"]["calls_per_s"] / lim,
            "served_over_full_speedup_p99": {kind: systems[f"full {kind}"]["p99_ms"] / systems[f"served {kind}"]["p99_ms"]
                                             for kind in ("known", "fresh", "new")},
            f"served_known_c{c}_p99_ms": systems[f"served known c{c}"]["p99_ms"],
        }
    x1 = next((n for n in results if "x1-itemknn" in n), None)
    x10 = next((n for n in results if "x10-itemknn" in n), None)
    if x1 and x10:
        ratios["p99_x10_over_x1_itemknn"] = {
            key: results[x10][key]["p99_ms"] / results[x1][key]["p99_ms"]
            for key in results[x1] if key in results[x10]}
    print_table(results, title="recommendation serving (ms, calls/s)", peer="limit known")
    print(json.dumps(ratios, indent=2))
    write_json(results, args.out, meta(
        "in-process Engine.recommend(user, k=10) on Amazon Beauty (store read, recommender, finishing stage); "
        "each timed call is a distinct user's first (cold history cache). known: history unchanged since "
        "training (precomputed list); fresh: one new event written untimed just before (online fold-in over "
        "the list + item neighbours); new: unseen user with 3 events. full: precomputed=False (every item "
        "scored by every model). service known: RecommendService.recommend alone. limit: the primary model's raw top-10 on its arrays (EASE: B row sum + "
        "argpartition; item-kNN: sparse row sum + argpartition) for the same known users. 1 client = one "
        f"call at a time; c{c} = {c} threads in one process. x10 is a SCALE SIMULATION: items replicated "
        "10x, each user with all events mapped to one random copy (seed 0). Trained: popularity, trending, "
        "the primary (EASE or item-kNN), ALS; no content (Beauty has no text), no SASRec"
        + (", LambdaMART stack" if args.stack else ", no ranker") + "; BLAS at 1 thread.",
        trained=trained, ratios=ratios, load_average_start=[round(x, 2) for x in load_start],
        load_average_end=[round(x, 2) for x in os.getloadavg()], cpus=os.cpu_count(),
        calls={"known": args.known, "fresh": args.fresh, "new": args.new, "concurrent": args.concurrent}))
    plot(results, args.out.with_suffix(".png"))
    say(f"wrote {args.out}")


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """p50 and p99 per path and size, log scale (full scoring and the served paths differ 100x)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is an extra; the JSON is the record
        return
    systems = [s for s in next(iter(results.values())) if not s.endswith(("c32", "c16", "c8"))]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    width = 0.8 / len(results)
    for ax, metric in zip(axes, ("p50_ms", "p99_ms")):
        for j, (name, res) in enumerate(results.items()):
            xs = np.arange(len(systems)) + j * width
            ax.bar(xs, [res[s][metric] if s in res else np.nan for s in systems], width, label=name)
        ax.set_xticks(np.arange(len(systems)) + width * (len(results) - 1) / 2)
        ax.set_xticklabels(systems, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{metric[:3]} latency per call, 1 client (ms, log)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Engine.recommend on Amazon Beauty: served (precomputed / online) vs full scoring vs limit; "
                 "x10 = scale simulation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
