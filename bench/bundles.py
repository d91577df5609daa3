"""Benchmark: basket completion, substitute detection and bundle latency.

Protocol (see shopsense.eval._baskets): Online Retail baskets split by time (the
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
import itertools
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
    from shopsense.eval._baskets import read_basket_file

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
    from shopsense.eval._baskets import read_basket_file

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


# -- systems ---------------------------------------------------------------------------
def mask_topk(R: np.ndarray, ctx: list[np.ndarray], k: int) -> np.ndarray:
    from shopsense.bundles._complement import _top_k

    R = R.astype(np.float64, copy=True)
    rows = np.repeat(np.arange(len(ctx)), [len(c) for c in ctx])
    R[rows, np.concatenate(ctx)] = -np.inf
    return _top_k(R, k).indices


class Popularity:
    def fit(self, X):
        self.pop = np.asarray(X.sum(axis=0)).ravel().astype(np.float64)
        return self

    def rank(self, ctx, k):
        return mask_topk(np.tile(self.pop, (len(ctx), 1)), ctx, k)


class CoCounts:
    """Sum of raw co-occurrence counts with the cart items (popularity breaks ties)."""

    def fit(self, X):
        self.C = (X.T @ X).tocsr().astype(np.float64)
        self.C.setdiag(0)
        self.pop = np.asarray(X.sum(axis=0)).ravel() / X.shape[0]
        return self

    def rank(self, ctx, k):
        Q = _cart_matrix(ctx, self.C.shape[0])
        return mask_topk(np.asarray((Q @ self.C).todense()) + 1e-6 * self.pop, ctx, k)


class MlxtendRules:
    """Association rules from mlxtend (the peer): fpgrowth + association_rules."""

    def __init__(self, min_support: float, max_len: int = 3, min_confidence: float = 0.01):
        self.min_support, self.max_len, self.min_confidence = min_support, max_len, min_confidence

    def fit(self, X):
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        n = X.shape[1]
        df = pd.DataFrame.sparse.from_spmatrix(X.astype(bool), columns=list(range(n)))
        freq = fpgrowth(df, min_support=self.min_support, use_colnames=True, max_len=self.max_len)
        self.pop = np.asarray(X.sum(axis=0)).ravel() / X.shape[0]
        self.rules: dict[frozenset, list[tuple[int, float]]] = {}
        self.n_itemsets = len(freq)
        if len(freq) and (freq.itemsets.map(len) > 1).any():
            rules = association_rules(freq, num_itemsets=X.shape[0], metric="confidence",
                                      min_threshold=self.min_confidence)
            rules = rules[rules.consequents.map(len) == 1]
            for a, c, conf in zip(rules.antecedents, rules.consequents, rules.confidence):
                self.rules.setdefault(frozenset(a), []).append((next(iter(c)), float(conf)))
        self.n_rules = sum(len(v) for v in self.rules.values())
        return self

    def rank(self, ctx, k):
        out = np.empty((len(ctx), k), dtype=np.int64)
        for q, c in enumerate(ctx):
            score: dict[int, float] = {}
            items = [int(x) for x in c]
            subsets = itertools.chain(((x,) for x in items),
                                      itertools.combinations(items, 2) if self.max_len > 2 else ())
            for s in subsets:
                for cons, conf in self.rules.get(frozenset(s), ()):
                    if conf > score.get(cons, 0.0):
                        score[cons] = conf
            R = 1e-6 * self.pop.copy()  # popularity fills what no rule covers
            if score:
                R[list(score)] += np.fromiter(score.values(), dtype=np.float64)
            out[q] = mask_topk(R[None, :], [c], k)[0]
        return out


class Ours:
    def __init__(self, categories=None, embeddings=None, **params):
        from shopsense.bundles import ComplementModel

        self.model = ComplementModel(**params)
        self.categories, self.embeddings = categories, embeddings

    def fit(self, X):
        self.model.fit(X, categories=self.categories, embeddings=self.embeddings)
        return self

    def rank(self, ctx, k):
        return self.model.rank(ctx, k=k).indices


def _cart_matrix(ctx, n):
    from shopsense.bundles import basket_matrix

    return basket_matrix(ctx, n)


# -- protocol ----------------------------------------------------------------------------
def evaluate(system, cases, k=K) -> dict[str, float]:
    from shopsense.eval._baskets import evaluate_completion

    t0 = time.perf_counter()
    m = evaluate_completion(system.rank, cases, k=k)
    dt = time.perf_counter() - t0
    return {f"hit@{k}": float(m[f"hit@{k}"].mean()), f"ndcg@{k}": float(m[f"ndcg@{k}"].mean()),
            "ms_per_cart": 1000 * dt / max(len(cases), 1), "_per_case": m}


def tune(name, make, grid, X_tr, val_cases):
    """Pick the setting with the best validation Hit@10 (ties: NDCG@10)."""
    best, best_key = None, (-1.0, -1.0)
    for params in grid:
        try:
            sysm = make(**params).fit(X_tr)
        except MemoryError:
            continue
        r = evaluate(sysm, val_cases)
        key = (r[f"hit@{K}"], r[f"ndcg@{K}"])
        log.info("  %s %s -> val hit@10 %.4f ndcg@10 %.4f", name, params, *key)
        if key > best_key:
            best, best_key = params, key
    return best, best_key


def run_dataset(ds: dict, args) -> tuple[dict, dict]:
    from shopsense.bundles import basket_matrix
    from shopsense.eval._baskets import hide_each, hide_one, split_baskets

    name, n = ds["name"], len(ds["ids"])
    split = split_baskets(ds["baskets"], mode=ds["split"], test_fraction=0.2, seed=args.seed)
    inner = split_baskets(split.train, mode=ds["split"], test_fraction=0.1, seed=args.seed + 1)
    X_tr = basket_matrix(split.train, n)
    X_in = basket_matrix(inner.train, n)
    val = hide_each(inner.test, max_cases=args.max_val, seed=args.seed + 2)
    test = hide_one(split.test, seed=args.seed + 3)
    if args.max_test and len(test) > args.max_test:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(test), args.max_test, replace=False))
        test = type(test)([test.contexts[i] for i in keep], test.targets[keep], test.rows[keep])
    log.info("%s: %d items, %d train / %d test baskets, %d val / %d test cases", name, n, len(split.train),
             len(split.test), len(val), len(test))
    emb = embed(ds["texts"], name)
    cats = ds["categories"]

    # peer: mlxtend min_support on validation
    sup_grid = [{"min_support": s} for s in ([0.005, 0.01] if name == "online_retail"
                                              else [0.001, 0.002, 0.005])]
    mlx_best, _ = tune("mlxtend", MlxtendRules, sup_grid, X_in, val)
    # ours: co-purchase part first, then the generalising signals
    def make_ours(**p):
        return Ours(categories=cats, embeddings=emb, **p)

    g1 = [{"item_model": "ease", "l2": l2, "text_weight": 0.0, "category_weight": 0.0}
          for l2 in (5.0, 20.0, 200.0)]
    g1 += [{"item_model": "conditional", "pop_exponent": 0.25, "text_weight": 0.0, "category_weight": 0.0}]
    p1, _ = tune("ours", make_ours, g1, X_in, val)
    g2 = [{**p1, "text_weight": t, "category_weight": c, "prior_weight": w}
          for t in (0.0, 0.3) for c in (0.0, 0.05) for w in (0.0, 0.02)]
    p2, _ = tune("ours", make_ours, g2, X_in, val)

    systems = {
        "popularity": Popularity(),
        "cooccurrence": CoCounts(),
        "mlxtend_rules": MlxtendRules(**mlx_best),
        "complement_no_text": Ours(categories=cats, embeddings=None, **{**p2, "text_weight": 0.0, "n_clusters": 0}),
        "complement": make_ours(**p2),
    }
    res, per_case = {}, {}
    counts = np.asarray(X_tr.sum(axis=0)).ravel()
    cold = counts[test.targets] < 5
    for sname, sysm in systems.items():
        t0 = time.perf_counter()
        sysm.fit(X_tr)
        fit_s = time.perf_counter() - t0
        r = evaluate(sysm, test)
        per_case[sname] = r.pop("_per_case")
        r["fit_s"] = fit_s
        r[f"hit@{K}_cold_targets"] = float(per_case[sname][f"hit@{K}"][cold].mean()) if cold.any() else None
        res[sname] = r
        log.info("%s %s: %s", name, sname, {k: round(v, 4) for k, v in r.items() if isinstance(v, float)})
    res["mlxtend_rules"]["n_rules"] = systems["mlxtend_rules"].n_rules
    info = {"chosen_params_complement": p2, "chosen_params_mlxtend": mlx_best, "n_test_cases": len(test),
            "n_val_cases": len(val), "n_cold_target_cases": int(cold.sum()),
            "split": ds["split"], "model": systems["complement"].model}
    from shopsense.eval._compare import bootstrap_diff

    for peer in ("popularity", "mlxtend_rules"):
        mean, lo, hi = bootstrap_diff(per_case[peer][f"hit@{K}"], per_case["complement"][f"hit@{K}"])
        info[f"hit@{K}_gain_vs_{peer}"] = {"mean": mean, "ci95": [lo, hi]}
    return res, info


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
    from shopsense.eval._baskets import split_baskets

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
    from shopsense.eval._report import bar_chart, meta, print_table, write_json

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
