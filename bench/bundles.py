"""Benchmark: basket completion, substitute detection and bundle latency.

Protocol (see shopsense.eval.run_baskets): Online Retail baskets split by time (the
file is in invoice order, so the last 20% of invoices are the test set);
Groceries (no timestamps) split at random 80/20. One random item of every test
basket with >= 2 distinct items is hidden; systems rank the whole catalogue
minus the visible items; Hit@10 and NDCG@10. Hyper-parameters of every system
(ours and the mlxtend peer's min_support) are chosen on a validation split cut
from the training baskets (the last / a random 10%), never on the test split;
the chosen settings are then refitted on all training baskets.

Systems: popularity; plain co-occurrence counts; association rules mined with
mlxtend fpgrowth (rules with 1-2 antecedents, scored by the best confidence of
a rule the cart fires, popularity fills the rest); the shopsense complement
model (co-purchase + category affinity + text neighbours, substitutes removed).

Substitutes (Online Retail): on a sample of items, precision of the returned
substitutes against a rule label: same product type, the last word of the
description ("... T-LIGHT HOLDER" -> HOLDER). Peers: nearest text neighbours,
and the top co-purchase partners by lift.

Bundles (Online Retail): an Engine with the training baskets as purchase events,
prices (median unit price in the 50k sample rows) and 10% of the items out of
stock; latency of BundleService.bundle and a check of budget and stock on every call.

Run: python bench/bundles.py            (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSENSE_DATASETS", ROOT.parent / "shared" / "datasets")) / "baskets"
CACHE = Path(os.environ.get("SHOPSENSE_BENCH_CACHE", Path(tempfile.gettempdir()) / "shopsense_bench_cache"))
K = 10

log = logging.getLogger("bench.bundles")


# -- data ------------------------------------------------------------------------------
def load_online_retail() -> dict:
    from shopsense.datasets import read_basket_file

    d = DATA / "online-retail"
    baskets, codes = read_basket_file(str(d / "online_retail_invoice_baskets_stockcodes.csv"))
    desc = pd.read_csv(d / "DERIVED_stockcode_description_lookup.csv", dtype=str)
    dmap = dict(zip(desc.StockCode.str.strip(), desc.Description.fillna("").str.strip()))
    rows = pd.concat([pd.read_csv(d / f, dtype={"StockCode": str}) for f in
                      ("online_retail_random40k_rows.csv", "online_retail_first10k_rows.csv")])
    rows = rows[(rows.UnitPrice > 0) & (rows.Quantity > 0)]
    price = rows.groupby(rows.StockCode.str.strip()).UnitPrice.median().to_dict()
    titles = [dmap.get(c, "") for c in codes]
    return {"name": "online_retail", "baskets": baskets, "ids": codes,
            "texts": [t.lower() if t else f"item {c}" for t, c in zip(titles, codes)],
            "descriptions": titles, "categories": None,
            "price": np.array([price.get(c, np.nan) for c in codes]), "split": "time"}


def load_groceries() -> dict:
    from shopsense.datasets import read_basket_file

    d = DATA / "groceries"
    # a few lines write the label "long life bakery product" as "long life, bakery
    # product"; re-join it so every item is one of the 169 labels
    fixed = CACHE / "groceries_fixed.csv"
    fixed.parent.mkdir(parents=True, exist_ok=True)
    fixed.write_text((d / "groceries.csv").read_text().replace("long life, bakery product",
                                                               "long life bakery product"))
    baskets, labels = read_basket_file(str(fixed))
    info = pd.read_csv(d / "DERIVED_groceries_itemInfo_from_rda.csv")
    info["labels"] = info["labels"].str.strip()
    lvl2 = dict(zip(info["labels"], info["level2"]))
    lvl1 = dict(zip(info["labels"], info["level1"]))
    # the csv has a few labels spelled with extra spaces/commas; unknown -> no category
    cats2 = [lvl2.get(x, "") for x in labels]
    names = sorted({c for c in cats2 if c})
    codes = np.array([names.index(c) if c else -1 for c in cats2])
    texts = [f"{x}. {lvl2.get(x, '')}. {lvl1.get(x, '')}" for x in labels]
    return {"name": "groceries", "baskets": baskets, "ids": labels, "texts": texts, "descriptions": labels,
            "categories": codes, "price": None, "split": "random"}


def embed(texts: list[str], name: str) -> np.ndarray:
    from shopsense.text import TextEncoder, encode_cached

    vecs, n_new = encode_cached(TextEncoder(threads=2), texts, CACHE / "embeddings", prune=False)
    log.info("%s: %d texts embedded (%d new)", name, len(texts), n_new)
    return vecs


# -- basket completion: the shared protocol (shopsense.eval.run_baskets, also behind
# ``shopsense eval baskets``) with this benchmark's data and mlxtend support grids -----------
SUPPORT_GRID = {"online_retail": [0.005, 0.01], "groceries": [0.001, 0.002, 0.005]}


def run_dataset(ds: dict, args) -> tuple[dict, dict]:
    from shopsense.eval import Phases, run_baskets

    name = ds["name"]
    emb = embed(ds["texts"], name)
    run = run_baskets(ds["baskets"], len(ds["ids"]), split=ds["split"], test_fraction=0.2, seed=args.seed, k=K,
                      categories=ds["categories"], embeddings=emb, support_grid=SUPPORT_GRID.get(name),
                      max_val=args.max_val, max_test=args.max_test, phases=Phases(echo=lambda m: log.info("%s %s", name, m)))
    info = {key: run.info[key] for key in ("chosen_params_complement", "chosen_params_mlxtend", "n_test_cases",
                                             "n_val_cases", "n_cold_target_cases", "split")}
    info["model"] = run.systems["complement"].model
    for key in (f"hit@{K}_gain_vs_popularity", f"hit@{K}_gain_vs_mlxtend_rules"):
        info[key] = run.info[key]
    return run.results, info


# -- substitutes -------------------------------------------------------------------------
_TYPE_RE = re.compile(r"[^A-Z]")


_NOT_TYPE = {"LARGE", "SMALL", "MEDIUM", "MINI", "JUMBO", "SET", "SETS", "PACK", "ASSORTED", "DESIGN",
             "PINK", "RED", "BLUE", "GREEN", "WHITE", "BLACK", "IVORY", "CREAM", "PURPLE", "ORANGE", "YELLOW",
             "GOLD", "SILVER", "BROWN", "GREY", "COLOUR", "COLOURS", "VINTAGE", "RETROSPOT", "RECT", "ROUND",
             "SQUARE", "HEART", "HEARTS", "WITH", "AND", "THE", "FOR"}


def product_type(desc: str) -> str:
    """The head noun of an Online Retail description: its last word that is not a
    size, colour, pattern or pack word ("HANGING BAUBLE T-LIGHT HOLDER LARGE" -> HOLDER)."""
    words = [_TYPE_RE.sub("", w) for w in desc.upper().split()]
    words = [w for w in words if len(w) > 2 and w not in _NOT_TYPE]
    return words[-1] if words else ""


def substitute_precision(ds: dict, model, args, k: int = 5) -> dict:
    types = np.array([product_type(d) for d in ds["descriptions"]], dtype=object)
    has = types != ""
    rng = np.random.default_rng(args.seed)
    cand = np.flatnonzero(has & (np.diff(model.substitutes_.indptr) > 0))
    sample = rng.choice(cand, min(args.sub_sample, len(cand)), replace=False)
    knn = model.neighbors_
    lift = model.copurchase_.lift_matrix()
    out = {}
    for sname, fn in {
        "substitutes": lambda i: model.substitutes(i, k)[0],
        "text_neighbours": lambda i: knn.indices[knn.indptr[i]:knn.indptr[i + 1]][
            np.argsort(-knn.data[knn.indptr[i]:knn.indptr[i + 1]], kind="stable")][:k],
        "copurchase_top_lift": lambda i: lift.indices[lift.indptr[i]:lift.indptr[i + 1]][
            np.argsort(-lift.data[lift.indptr[i]:lift.indptr[i + 1]], kind="stable")][:k],
        "complements": lambda i: model.rank([[i]], k=k).indices[0],
    }.items():
        hits, total = 0, 0
        for i in sample:
            got = [j for j in fn(int(i)) if j >= 0 and has[j]]
            hits += sum(types[j] == types[i] for j in got)
            total += len(got)
        out[sname] = {f"same_type_precision@{k}": hits / max(total, 1), "n_returned": total}
    out["_n_items_sampled"] = len(sample)
    out["_items_with_substitutes"] = len(cand)
    return out


# -- bundles through the engine ------------------------------------------------------------
def bundle_latency(ds: dict, params: dict, args) -> dict:
    from shopsense import Engine
    from shopsense.bundles import BundleService, ComplementModel
    from shopsense.catalog import Event, Product
    from shopsense.eval import split_baskets

    home = CACHE / "or_engine"
    rng = np.random.default_rng(args.seed)
    in_stock = rng.random(len(ds["ids"])) > 0.1
    fresh = not (home / "store.sqlite3").exists()
    eng = Engine(home)
    if fresh:
        prods = [Product(id=c, title=(d or f"item {c}").title(), price=None if not np.isfinite(p) else float(p),
                         in_stock=bool(s))
                 for c, d, p, s in zip(ds["ids"], ds["descriptions"], ds["price"], in_stock)]
        eng.store.upsert_products(prods)
        split = split_baskets(ds["baskets"], mode="time", test_fraction=0.2)
        t0 = 1_290_000_000.0
        evs = []
        for b, basket in enumerate(split.train):
            for j in basket:
                evs.append(Event(user_id=f"u{b % 4000}", item_id=ds["ids"][j], type="purchase",
                                 timestamp=t0 + 60 * b, session_id=f"inv{b}"))
        for s in range(0, len(evs), 50_000):
            eng.store.add_events(evs[s:s + 50_000])
    cat = eng.catalog()
    t0 = time.perf_counter()
    svc = BundleService(eng, ComplementModel(**params)).fit()
    fit_s = time.perf_counter() - t0
    counts = svc.model_.item_counts_
    anchors = rng.choice(np.flatnonzero(np.isfinite(cat.price) & (counts > 0)), args.bundle_calls)
    lat, cpu, cart_lat, violations, sizes, optimal = [], [], [], 0, [], 0
    load_before = os.getloadavg()[0]
    for n, a in enumerate(anchors):
        aid = cat.ids[a]
        budget = float(cat.price[a] + rng.uniform(2, 40))
        t, c = time.perf_counter(), time.process_time()
        res = svc.bundle([aid], size=int(rng.integers(2, 5)), budget=budget)
        lat.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        t = time.perf_counter()
        svc.complete_cart([aid], k=10)
        cart_lat.append(time.perf_counter() - t)
        idx = [cat.index[h.id] for h in res.hits]
        total = cat.price[a] + cat.price[idx].sum()
        if not (total <= budget + 1e-6) or not cat.in_stock[idx].all() or aid in res.ids:
            violations += 1
        sizes.append(len(idx))
        optimal += bool(res.info.get("optimal"))
    eng.close()
    lat_ms, cart_ms, cpu_ms = 1000 * np.array(lat), 1000 * np.array(cart_lat), 1000 * np.array(cpu)
    # the machine is shared: wall time depends on the load, CPU time much less
    return {"bundle_p50_ms": float(np.median(lat_ms)), "bundle_p95_ms": float(np.percentile(lat_ms, 95)),
            "bundle_cpu_p50_ms": float(np.median(cpu_ms)), "bundle_cpu_p95_ms": float(np.percentile(cpu_ms, 95)),
            "load_average_1min": float((load_before + os.getloadavg()[0]) / 2),
            "bundle_max_ms": float(lat_ms.max()), "complete_cart_p50_ms": float(np.median(cart_ms)),
            "calls": len(lat), "budget_or_stock_violations": violations,
            "proven_optimal_share": optimal / len(lat), "mean_items_added": float(np.mean(sizes)),
            "service_fit_s": fit_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-test", type=int, default=0, help="subsample test cases (0 = all)")
    ap.add_argument("--max-val", type=int, default=4000, help="validation cases (all items of val baskets)")
    ap.add_argument("--sub-sample", type=int, default=300)
    ap.add_argument("--bundle-calls", type=int, default=200)
    ap.add_argument("--datasets", default="online_retail,groceries")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bundles.json"))
    ap.add_argument("--only-bundles", action="store_true",
                    help="re-measure only the bundle calls, with the settings chosen in --out, and update it")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    if not DATA.exists():
        sys.exit(f"datasets not found at {DATA}")
    from shopsense.eval import bar_chart, meta, print_table, write_json

    if args.only_bundles:
        prev = json.loads(Path(args.out).read_text())
        params = prev["_meta"]["details"]["online_retail"]["chosen_params_complement"]
        prev["online_retail_bundles"] = {"bundle_service": bundle_latency(load_online_retail(), params, args)}
        prev["_meta"]["bundles_command"] = " ".join(["bundles.py", *sys.argv[1:]])
        prev["_meta"]["bundles_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print_table({"online_retail_bundles": prev["online_retail_bundles"]}, "bundle calls")
        Path(args.out).write_text(json.dumps(prev, indent=2, default=float))
        return
    results: dict = {}
    extra: dict = {}
    loaders = {"online_retail": load_online_retail, "groceries": load_groceries}
    for name in args.datasets.split(","):
        ds = loaders[name]()
        res, info = run_dataset(ds, args)
        model = info.pop("model")
        results[name] = res
        if name == "online_retail":
            subs = substitute_precision(ds, model, args)
            results["online_retail_substitutes"] = {k: v for k, v in subs.items() if not k.startswith("_")}
            info["substitutes_sample"] = {k: v for k, v in subs.items() if k.startswith("_")}
            results["online_retail_bundles"] = {"bundle_service": bundle_latency(
                ds, info["chosen_params_complement"], args)}
        extra[name] = info
    print_table({k: v for k, v in results.items() if not k.endswith("bundles")}, "bundles", peer="mlxtend_rules")
    print_table({k: v for k, v in results.items() if k.endswith("bundles")}, "bundle calls")
    m = meta("leave-one-item-out per test basket; Online Retail time split (invoice order) 80/20, Groceries "
             "random 80/20; validation = last/random 10% of train for every system's settings; Hit@10 / "
             "NDCG@10 over all items minus the visible ones; substitutes: same product type (last word of the "
             "description) precision@5 on a random item sample; bundles: Engine on the training baskets, "
             "size 2-4, random budgets, 10% items out of stock", details=json.loads(json.dumps(extra, default=str)))
    out = write_json(results, args.out, m)
    bar_chart({k: v for k, v in results.items() if k in ("online_retail", "groceries")}, f"hit@{K}",
              Path(args.out).with_suffix(".png"), "basket completion Hit@10")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
