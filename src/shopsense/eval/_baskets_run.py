"""The basket-completion run shared by ``bench/bundles.py`` and ``shopsense eval
baskets``: one implementation of the systems and the protocol.

Baskets are split at random or by time; one random item of every test basket
with at least two distinct items is hidden; each system ranks the whole
catalogue minus the visible items; Hit@k and NDCG@k. Every system's settings
(the complement model's and the mlxtend peer's ``min_support``) are chosen on a
validation split cut from the training baskets (the last / a random 10%), never
on the test split, and then refitted on all training baskets.

Systems: popularity; plain co-occurrence counts; association rules mined with
mlxtend fpgrowth (rules with 1-2 antecedents, scored by the best confidence of a
rule the cart fires, popularity fills the rest); the shopsense complement model
(co-purchase + category affinity + text neighbours, substitutes removed).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import ValidationError, check_param
from shopsense.eval._baskets import (
    HiddenItems,
    evaluate_completion,
    hide_each,
    hide_one,
    split_baskets,
)
from shopsense.eval._progress import Phases

__all__ = ["AssociationRules", "BasketRun", "CoOccurrence", "ComplementCompleter", "PopularityCompleter",
           "evaluate_baskets", "evaluate_system", "run_baskets", "tune"]

log = logging.getLogger(__name__)

TABLE_METRICS = ("hit@10", "ndcg@10", "hit@10_cold_targets", "ms_per_cart", "fit_s")
PROTOCOL = ("leave-one-item-out per test basket (baskets with >= 2 distinct items); Hit@10 / NDCG@10 over all items "
            "minus the visible ones; validation = last/random 10% of the training baskets for every system's "
            "settings (mlxtend min_support included)")


# -- systems: fit(X) -> self, rank(contexts, k) -> (n, k) item indices -------------------------
def mask_topk(scores: np.ndarray, ctx: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Top-k of each row with the cart's own items removed."""
    from shopsense.bundles import top_k_dense

    R = scores.astype(np.float64, copy=True)
    rows = np.repeat(np.arange(len(ctx)), [len(c) for c in ctx])
    if len(rows):
        R[rows, np.concatenate(ctx)] = -np.inf
    return top_k_dense(R, k).indices


class PopularityCompleter:
    """The most bought items not already in the cart."""

    def fit(self, X: Any) -> PopularityCompleter:
        self.pop = np.asarray(X.sum(axis=0)).ravel().astype(np.float64)
        return self

    def rank(self, ctx: Sequence[np.ndarray], k: int) -> np.ndarray:
        return mask_topk(np.tile(self.pop, (len(ctx), 1)), ctx, k)


class CoOccurrence:
    """Sum of raw co-occurrence counts with the cart items (popularity breaks ties)."""

    def fit(self, X: Any) -> CoOccurrence:
        self.C = (X.T @ X).tocsr().astype(np.float64)
        self.C.setdiag(0)
        self.pop = np.asarray(X.sum(axis=0)).ravel() / X.shape[0]
        return self

    def rank(self, ctx: Sequence[np.ndarray], k: int) -> np.ndarray:
        from shopsense.bundles import basket_matrix

        Q = basket_matrix(ctx, self.C.shape[0])
        return mask_topk(np.asarray((Q @ self.C).todense()) + 1e-6 * self.pop, ctx, k)


class AssociationRules:
    """Association rules from mlxtend (the peer): fpgrowth + association_rules."""

    def __init__(self, min_support: float, max_len: int = 3, min_confidence: float = 0.01) -> None:
        self.min_support, self.max_len, self.min_confidence = min_support, max_len, min_confidence

    def fit(self, X: Any) -> AssociationRules:
        import pandas as pd
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        n = X.shape[1]
        df = pd.DataFrame.sparse.from_spmatrix(X.astype(bool), columns=list(range(n)))
        freq = fpgrowth(df, min_support=self.min_support, use_colnames=True, max_len=self.max_len)
        self.pop = np.asarray(X.sum(axis=0)).ravel() / X.shape[0]
        self.rules: dict[frozenset[int], list[tuple[int, float]]] = {}
        self.n_itemsets = len(freq)
        if len(freq) and (freq.itemsets.map(len) > 1).any():
            rules = association_rules(freq, num_itemsets=X.shape[0], metric="confidence",
                                      min_threshold=self.min_confidence)
            rules = rules[rules.consequents.map(len) == 1]
            for a, c, conf in zip(rules.antecedents, rules.consequents, rules.confidence):
                self.rules.setdefault(frozenset(a), []).append((next(iter(c)), float(conf)))
        self.n_rules = sum(len(v) for v in self.rules.values())
        return self

    def rank(self, ctx: Sequence[np.ndarray], k: int) -> np.ndarray:
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


class ComplementCompleter:
    """The shopsense :class:`~shopsense.bundles.ComplementModel` behind the same interface."""

    def __init__(self, categories: np.ndarray | None = None, embeddings: np.ndarray | None = None,
                 **params: Any) -> None:
        from shopsense.bundles import ComplementModel

        self.model = ComplementModel(**params)
        self.categories, self.embeddings = categories, embeddings

    def fit(self, X: Any) -> ComplementCompleter:
        self.model.fit(X, categories=self.categories, embeddings=self.embeddings)
        return self

    def rank(self, ctx: Sequence[np.ndarray], k: int) -> np.ndarray:
        return self.model.rank(ctx, k=k).indices


# -- protocol ------------------------------------------------------------------------------------
def evaluate_system(system: Any, cases: HiddenItems, k: int = 10,
                    progress: Callable[[int], None] | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Mean Hit@k / NDCG@k and ms per cart, and the per-case scores."""
    t0 = time.perf_counter()
    per: dict[str, list[np.ndarray]] = {f"hit@{k}": [], f"ndcg@{k}": []}
    step = 2048  # progress granularity; evaluate_completion batches inside
    for s in range(0, len(cases), step):
        part = HiddenItems(cases.contexts[s:s + step], cases.targets[s:s + step], cases.rows[s:s + step])
        m = evaluate_completion(system.rank, part, k=k)
        for key, parts in per.items():
            parts.append(m[key])
        if progress is not None:
            progress(min(s + step, len(cases)))
    m = {key: np.concatenate(v) if v else np.zeros(0) for key, v in per.items()}
    dt = time.perf_counter() - t0
    return ({f"hit@{k}": float(m[f"hit@{k}"].mean()) if len(cases) else float("nan"),
             f"ndcg@{k}": float(m[f"ndcg@{k}"].mean()) if len(cases) else float("nan"),
             "ms_per_cart": 1000 * dt / max(len(cases), 1)}, m)


def tune(name: str, make: Callable[..., Any], grid: Sequence[dict[str, Any]], X: Any, val_cases: HiddenItems,
         k: int = 10, phases: Phases | None = None) -> tuple[dict[str, Any] | None, tuple[float, float]]:
    """The setting with the best validation Hit@k (ties: NDCG@k)."""
    phases = phases or Phases()
    best, best_key = None, (-1.0, -1.0)
    with phases.phase(f"{name}: choose settings on validation", total=len(grid)) as upd:
        for n, params in enumerate(grid, start=1):
            try:
                sysm = make(**params).fit(X)
            except MemoryError:  # a too-low min_support: the next setting
                log.warning("%s %s: out of memory, skipped", name, params)
                continue
            r, _ = evaluate_system(sysm, val_cases, k)
            key = (r[f"hit@{k}"], r[f"ndcg@{k}"])
            log.info("  %s %s -> val hit@%d %.4f ndcg@%d %.4f", name, params, k, key[0], k, key[1])
            if key > best_key:
                best, best_key = params, key
            upd(n)
    return best, best_key


@dataclass
class BasketRun:
    """Mean figures per system, per-case scores (for bootstrap comparisons), run facts and the
    systems fitted on all training baskets."""

    results: dict[str, dict[str, Any]]
    per_case: dict[str, dict[str, dict[str, float]]]
    info: dict[str, Any] = field(default_factory=dict)
    systems: dict[str, Any] = field(default_factory=dict)  # fitted on all training baskets


def default_support_grid(n_items: int, n_baskets: int) -> list[float]:
    """The three lowest workable ``min_support`` values for mlxtend's fpgrowth.

    Frequent itemsets grow combinatorially as the support falls: on thousands of items
    (Online Retail) 0.001 does not fit in memory, on a few hundred (Groceries) it is
    quick; and a support met by fewer than 5 baskets mines the accidents of a few large
    baskets (on 300 invoices of up to 590 items, 2 baskets gave millions of itemsets)."""
    floor = 0.005 if n_items > 1000 else 0.001
    ok = [s for s in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2) if s >= floor and s * n_baskets >= 5]
    return ok[:3] or [0.2]


def run_baskets(
    baskets: Sequence[np.ndarray], n_items: int, *, split: str = "random", test_fraction: float = 0.2,
    times: np.ndarray | None = None, basket_ids: Sequence[str] | None = None, seed: int = 0, k: int = 10,
    categories: np.ndarray | None = None, embeddings: np.ndarray | None = None,
    support_grid: Sequence[float] | None = None, max_val: int = 4000, max_test: int = 0,
    phases: Phases | None = None,
) -> BasketRun:
    """Split, tune every system on validation, refit on all training baskets and score the test cases.

    ``times`` orders a ``split="time"`` (default: the input order); ``basket_ids`` name
    the per-case scores (default: the basket's position)."""
    from shopsense.bundles import basket_matrix
    from shopsense.eval._compare import bootstrap_diff

    phases = phases or Phases()
    check_param("split", split, split in ("random", "time"), "'random' or 'time'", "run_baskets")
    check_param("k", k, isinstance(k, int) and k >= 1, "an int >= 1", "run_baskets")
    n = n_items
    sp = split_baskets(baskets, mode=split, test_fraction=test_fraction, times=times, seed=seed)
    inner = split_baskets(sp.train, mode=split, test_fraction=0.1, seed=seed + 1,
                          times=None if times is None else np.asarray(times)[sp.train_rows])
    X_tr = basket_matrix(sp.train, n)
    X_in = basket_matrix(inner.train, n)
    val = hide_each(inner.test, max_cases=max_val, seed=seed + 2)
    test = hide_one(sp.test, seed=seed + 3)
    too_small = len(sp.test) - len(test)
    if max_test and len(test) > max_test:
        keep = np.sort(np.random.default_rng(seed).choice(len(test), max_test, replace=False))
        test = HiddenItems([test.contexts[i] for i in keep], test.targets[keep], test.rows[keep])
    if len(test) == 0:
        raise ValidationError("no test basket has the 2 distinct items the protocol needs (one hidden, one "
                              "visible).", field="baskets")
    if len(val) == 0:
        raise ValidationError("too few baskets with 2 or more items for a validation split.", field="baskets")
    phases.echo(f"{n:,} items, {len(sp.train):,} train / {len(sp.test):,} test baskets, {len(val):,} validation / "
                f"{len(test):,} test cases ({too_small:,} test baskets with < 2 items)")
    cats, emb = categories, embeddings

    grid_s = list(support_grid) if support_grid is not None else default_support_grid(n, len(inner.train))
    mlx_best, _ = tune("mlxtend", AssociationRules, [{"min_support": s} for s in grid_s], X_in, val, k, phases)
    if mlx_best is None:
        raise ValidationError(f"mlxtend ran out of memory at every min_support in {grid_s}.", field="support_grid")

    def make_ours(**p: Any) -> ComplementCompleter:
        return ComplementCompleter(categories=cats, embeddings=emb, **p)

    # co-purchase part first, then the generalising signals (only those the data can feed)
    g1: list[dict[str, Any]] = [{"item_model": "ease", "l2": l2, "text_weight": 0.0, "category_weight": 0.0}
                                for l2 in (5.0, 20.0, 200.0)]
    g1 += [{"item_model": "conditional", "pop_exponent": 0.25, "text_weight": 0.0, "category_weight": 0.0}]
    p1, _ = tune("complement (co-purchase)", make_ours, g1, X_in, val, k, phases)
    has_cats = emb is not None or (cats is not None and (np.asarray(cats) >= 0).any())
    g2 = [{**(p1 or {}), "text_weight": t, "category_weight": c, "prior_weight": w}
          for t in ((0.0, 0.3) if emb is not None else (0.0,))
          for c in ((0.0, 0.05) if has_cats else (0.0,)) for w in (0.0, 0.02)]
    p2, _ = tune("complement (signals)", make_ours, g2, X_in, val, k, phases)
    assert p2 is not None

    systems: dict[str, Any] = {
        "popularity": PopularityCompleter(),
        "cooccurrence": CoOccurrence(),
        "mlxtend_rules": AssociationRules(**mlx_best),
    }
    if emb is not None:  # the same model without its text signals, to show what text adds
        systems["complement_no_text"] = ComplementCompleter(categories=cats, embeddings=None,
                                                            **{**p2, "text_weight": 0.0, "n_clusters": 0})
    systems["complement"] = make_ours(**p2)
    ids = [str(basket_ids[int(r)]) if basket_ids is not None else str(int(r)) for r in sp.test_rows[test.rows]]
    counts = np.asarray(X_tr.sum(axis=0)).ravel()
    cold = counts[test.targets] < 5
    res: dict[str, dict[str, Any]] = {}
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    per_arrays: dict[str, dict[str, np.ndarray]] = {}
    for sname, sysm in systems.items():
        with phases.phase(f"{sname}: fit and rank", total=len(test)) as upd:
            t0 = time.perf_counter()
            sysm.fit(X_tr)
            fit_s = time.perf_counter() - t0
            r, m = evaluate_system(sysm, test, k, progress=upd)
        per_arrays[sname] = m
        per_case[sname] = {key: dict(zip(ids, v.tolist())) for key, v in m.items()}
        r["fit_s"] = fit_s
        r[f"hit@{k}_cold_targets"] = float(m[f"hit@{k}"][cold].mean()) if cold.any() else None
        res[sname] = r
        phases.echo(f"  {sname:20s} hit@{k} {r[f'hit@{k}']:.4f} ndcg@{k} {r[f'ndcg@{k}']:.4f}")
    res["mlxtend_rules"]["n_rules"] = systems["mlxtend_rules"].n_rules
    info: dict[str, Any] = {"chosen_params_complement": p2, "chosen_params_mlxtend": mlx_best,
                            "n_test_cases": len(test), "n_val_cases": len(val), "n_cold_target_cases": int(cold.sum()),
                            "n_test_baskets_too_small": too_small, "split": split, "support_grid": grid_s}
    for peer in ("popularity", "mlxtend_rules"):
        mean, lo, hi = bootstrap_diff(per_arrays[peer][f"hit@{k}"], per_arrays["complement"][f"hit@{k}"])
        info[f"hit@{k}_gain_vs_{peer}"] = {"mean": mean, "ci95": [lo, hi]}
    return BasketRun(res, per_case, info, systems)


# -- files in, report out (``shopsense eval baskets``) ------------------------------------------
def evaluate_baskets(
    baskets: str | Path, *, items: str | Path | None = None, items_map: dict[str, str] | None = None,
    fmt: str = "auto", split: str = "random", test_fraction: float = 0.2, seed: int = 0, max_test: int = 0,
    threads: int = 1, name: str | None = None, cache: str | Path | None = None, phases: Phases | None = None,
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Read a shop's basket (and item) files, run :func:`run_baskets` and return the result
    document (``{name: {system: {metric: value}}, "_per_unit": ..., "_meta": ...}``)."""
    from shopsense.datasets import read_baskets, read_items
    from shopsense.eval._recommend import item_categories, item_text
    from shopsense.eval._recommend_run import encode_item_texts, skips_line
    from shopsense.eval._report import meta
    from shopsense.eval._threads import bounded_threads

    phases = phases or Phases()
    check_param("threads", threads, isinstance(threads, int) and threads >= 1, "an int >= 1", "evaluate_baskets")
    path = Path(baskets)
    item_data = read_items(items, items_map) if items is not None else None
    data = read_baskets(path, fmt, item_ids=item_data.ids if item_data else None)
    for what, sk in (("items", item_data.skips if item_data else None), ("baskets", data.skips)):
        if sk:
            phases.echo(f"[yellow]{what}: {skips_line(sk)}[/]")
    times = data.times
    if split == "time" and times is None:
        phases.echo("time split: the file has no time column, so its order is taken as time order")
    emb = cats = None
    if item_data is not None:
        cats = item_categories(item_data.records)
        emb = encode_item_texts([item_text(r) for r in item_data.records], cache, threads, phases)
    with bounded_threads(threads):
        run = run_baskets(data.baskets, data.n_items, split=split, test_fraction=test_fraction, times=times,
                          basket_ids=data.basket_ids, seed=seed, categories=cats, embeddings=emb, max_test=max_test,
                          phases=phases, **run_kwargs)
    ds = name or path.stem
    m = meta(PROTOCOL + f"; {split} split, {test_fraction:g} of baskets tested",
             baskets_file=str(path), items_file=str(items) if items else None, format=data.format, seed=seed, threads=threads,
             baskets_read=len(data.baskets), items_in_vocabulary=data.n_items,
             time_source=("time column" if times is not None else "file order") if split == "time" else None,
             skips={"baskets": data.skips.as_dict(), **({"items": item_data.skips.as_dict()} if item_data else {})},
             **run.info)
    return {ds: run.results, "_per_unit": {ds: run.per_case}, "_meta": m}
