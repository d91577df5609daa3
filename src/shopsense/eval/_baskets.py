"""Basket completion protocol: split baskets (random or by time), hide one item
per test basket, rank the rest of the catalogue, Hit@k and NDCG@k.

Shared by ``bench/bundles.py``, the bundle tests and ``shopsense eval baskets``; the
basket files are read by :mod:`shopsense.datasets` (:func:`~shopsense.datasets.read_baskets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# the basket files are read by shopsense.datasets (re-exported: tests and bench import them from here)
from shopsense.datasets import BasketData, basket_format, read_basket_file, read_baskets
from shopsense.errors import check_param
from shopsense.metrics import loo_metrics

__all__ = ["BasketData", "BasketSplit", "HiddenItems", "basket_format", "evaluate_completion", "hide_each", "hide_one",
           "read_basket_file", "read_baskets", "split_baskets"]


@dataclass(frozen=True)
class BasketSplit:
    """Training and test baskets, with each one's position in the input order."""

    train: list[np.ndarray]
    test: list[np.ndarray]
    train_rows: np.ndarray  # positions in the input order
    test_rows: np.ndarray


@dataclass(frozen=True)
class HiddenItems:
    """One test case per basket: the visible items and the hidden one."""

    contexts: list[np.ndarray]
    targets: np.ndarray  # int64
    rows: np.ndarray  # which test basket each case came from

    def __len__(self) -> int:
        return len(self.targets)


def split_baskets(baskets: Sequence[np.ndarray], mode: str = "random", test_fraction: float = 0.2,
                  times: np.ndarray | None = None, seed: int = 0) -> BasketSplit:
    """Random split, or time split (the latest ``test_fraction`` of baskets are
    the test set; without ``times`` the input order is taken as time order)."""
    check_param("mode", mode, mode in ("random", "time"), "'random' or 'time'", "split_baskets")
    check_param("test_fraction", test_fraction, 0 < test_fraction < 1, "a float in (0, 1)", "split_baskets")
    n = len(baskets)
    if mode == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.argsort(times, kind="stable") if times is not None else np.arange(n)
    n_test = round(n * test_fraction)
    train_rows, test_rows = np.sort(order[: n - n_test]), np.sort(order[n - n_test:])
    return BasketSplit([baskets[i] for i in train_rows], [baskets[i] for i in test_rows], train_rows, test_rows)


def hide_one(baskets: Sequence[np.ndarray], seed: int = 0, min_size: int = 2,
             known: np.ndarray | None = None) -> HiddenItems:
    """Hide one random item of every basket with at least ``min_size`` distinct items.

    ``known`` (bool per item) restricts the hidden item to items a model could
    know (seen in training); ``None`` allows any item, so cold items count as misses.
    """
    rng = np.random.default_rng(seed)
    contexts, targets, rows = [], [], []
    for r, b in enumerate(baskets):
        b = np.unique(np.asarray(b, dtype=np.int64))
        if len(b) < min_size:
            continue
        pool = b if known is None else b[known[b]]
        if len(pool) == 0:
            continue
        t = int(pool[rng.integers(len(pool))])
        contexts.append(b[b != t])
        targets.append(t)
        rows.append(r)
    return HiddenItems(contexts, np.asarray(targets, dtype=np.int64), np.asarray(rows, dtype=np.int64))


def hide_each(baskets: Sequence[np.ndarray], min_size: int = 2, max_cases: int | None = None,
              seed: int = 0) -> HiddenItems:
    """Every item of every basket hidden in turn (one case each): more cases from
    few baskets, for validation; ``max_cases`` keeps a random subset."""
    contexts, targets, rows = [], [], []
    for r, b in enumerate(baskets):
        b = np.unique(np.asarray(b, dtype=np.int64))
        if len(b) < min_size:
            continue
        for t in b:
            contexts.append(b[b != t])
            targets.append(int(t))
            rows.append(r)
    cases = HiddenItems(contexts, np.asarray(targets, dtype=np.int64), np.asarray(rows, dtype=np.int64))
    if max_cases is not None and len(cases) > max_cases:
        keep = np.sort(np.random.default_rng(seed).choice(len(cases), max_cases, replace=False))
        cases = HiddenItems([contexts[i] for i in keep], cases.targets[keep], cases.rows[keep])
    return cases


def evaluate_completion(rank: Callable[[list[np.ndarray], int], np.ndarray], cases: HiddenItems, k: int = 10,
                        batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per-case Hit@k and NDCG@k of ``rank(contexts, k) -> (n, k) item indices``.

    ``rank`` must not return the context items (a cart completer never does).
    """
    out: dict[str, list[np.ndarray]] = {f"hit@{k}": [], f"ndcg@{k}": []}
    for s in range(0, len(cases), batch_size):
        ctx = cases.contexts[s:s + batch_size]
        ranked = np.asarray(rank(ctx, k))
        if ranked.shape[0] != len(ctx) or ranked.shape[1] < k:
            raise ValueError(f"rank returned shape {ranked.shape}; expected ({len(ctx)}, >={k})")
        m = loo_metrics(ranked[:, :k], cases.targets[s:s + batch_size], k=k)
        out[f"hit@{k}"].append(m[f"recall@{k}"])
        out[f"ndcg@{k}"].append(m[f"ndcg@{k}"])
    return {key: np.concatenate(v) if v else np.zeros(0) for key, v in out.items()}
