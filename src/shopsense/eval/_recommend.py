"""Leave-one-out protocol for recommenders (the S3-Rec/P5/TIGER standard).

Each user's last item is the test target, the second-to-last the validation
target; the model ranks ALL items (no sampled negatives) with the user's history
excluded. Tune on validation, report test. Used by tests, ``bench/recommend.py``
and ``shopsense eval recommend``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.datasets import read_items, read_sequences
from shopsense.metrics import loo_metrics


@dataclass(frozen=True)
class LOOSplit:
    """Histories and single targets of the leave-one-out split (item indices)."""

    train: list[np.ndarray]  # s[:-2]: what models are fitted on for validation
    valid_hist: list[np.ndarray]  # = train
    valid_target: np.ndarray  # s[-2]
    test_hist: list[np.ndarray]  # s[:-1]
    test_target: np.ndarray  # s[-1]
    n_items: int


def loo_split(sequences: Sequence[Sequence[int]], n_items: int, min_len: int = 3) -> LOOSplit:
    """Split ordered per-user sequences; users with fewer than ``min_len`` items are dropped."""
    seqs = [np.asarray(s, np.int64) for s in sequences if len(s) >= min_len]
    train = [s[:-2] for s in seqs]
    return LOOSplit(train=train, valid_hist=train, valid_target=np.array([s[-2] for s in seqs], np.int64),
                    test_hist=[s[:-1] for s in seqs], test_target=np.array([s[-1] for s in seqs], np.int64),
                    n_items=n_items)


def rank_all(recommend: Callable[[list[np.ndarray]], np.ndarray], histories: Sequence[np.ndarray],
             k: int = 10, batch_size: int = 1024, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Top-k indices for every history, in batches; ``recommend(batch) -> (b, >=k) indices``.

    Batches bound memory to ``batch_size x n_items`` scores; ``progress(n)`` is called
    with the number of histories done after each batch."""
    out = np.full((len(histories), k), -1, np.int64)
    for s in range(0, len(histories), batch_size):
        r = np.asarray(recommend(list(histories[s:s + batch_size])))[:, :k]
        out[s:s + batch_size, : r.shape[1]] = r
        if progress is not None:
            progress(min(s + batch_size, len(histories)))
    return out


def rank_model(model: Any, histories: Sequence[np.ndarray], k: int = 10, batch_size: int = 1024,
               allowed: np.ndarray | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(n, k) top-k of ``model.recommend`` for every history (history excluded)."""
    return rank_all(lambda b: model.recommend(b, k, allowed=allowed).indices, histories, k, batch_size, progress)


def evaluate_ranked(ranked: np.ndarray, targets: np.ndarray, n_items: int, k: int = 10,
                    mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean Recall@k / NDCG@k (via :func:`loo_metrics`) and catalogue coverage@k.

    ``mask`` restricts the means to some users (e.g. those whose target is a cold item)."""
    m = loo_metrics(ranked, targets, k)
    sel = np.ones(len(targets), bool) if mask is None else np.asarray(mask, bool)
    top = ranked[sel][:, :k]
    cov = len(np.unique(top[top >= 0])) / max(n_items, 1)
    return {f"recall@{k}": float(m[f"recall@{k}"][sel].mean()) if sel.any() else float("nan"),
            f"ndcg@{k}": float(m[f"ndcg@{k}"][sel].mean()) if sel.any() else float("nan"),
            f"coverage@{k}": float(cov), "users": int(sel.sum())}


def evaluate_model(model: Any, histories: Sequence[np.ndarray], targets: np.ndarray, k: int = 10,
                   batch_size: int = 1024, allowed: np.ndarray | None = None,
                   progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Rank all items for each history with ``model.recommend`` (history excluded) and score."""
    t0 = time.perf_counter()
    ranked = rank_model(model, histories, k, batch_size, allowed, progress)
    res = evaluate_ranked(ranked, targets, model.n_items_, k)
    res["eval_seconds"] = time.perf_counter() - t0
    return res


# -- the files in ../shared/datasets/rec, read by shopsense.datasets ------------------------
def read_user_sequences(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """``user_sequence.txt`` (user id, then item ids in time order) -> index sequences, item ids
    (:func:`~shopsense.datasets.read_sequences`, items indexed in order of first appearance)."""
    data = read_sequences(path, "sequences")
    return data.sequences, data.item_ids


def read_office(folder: str | Path) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Amazon Office: sequences over item indices (the file's own item numbers; users in
    index order) and the item records (title, brand, categories, description), both read
    by :mod:`shopsense.datasets`."""
    folder = Path(folder)
    items = read_items(folder / "Office.item.json")
    by_id = dict(zip(items.ids, items.records))
    n = max(int(k) for k in items.ids) + 1
    records = [by_id.get(str(i), {"title": "", "description": "", "brand": "", "categories": ""}) for i in range(n)]
    data = read_sequences(folder / "Office.inter.json", "sequences", item_ids=[str(i) for i in range(n)])
    order = sorted(range(len(data.user_ids)), key=lambda k: int(data.user_ids[k]))
    return [data.sequences[k] for k in order], records


def office_text(record: dict[str, Any]) -> str:
    """The same text shape as ``Product.text()``: title. brand. category path. description."""
    parts = [record.get("title") or ""]
    if record.get("brand"):
        parts.append(record["brand"])
    if record.get("categories"):
        parts.append(" > ".join(c.strip() for c in str(record["categories"]).split(",")))
    if record.get("description"):
        parts.append(str(record["description"])[:500])
    return ". ".join(p for p in parts if p)


def item_text(record: Mapping[str, Any]) -> str:
    """The text an item is embedded from, the shape of ``Product.text()``:
    title. brand. category path. description[:500]."""
    return office_text(record)


def item_categories(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Integer code of each item's leaf category (the last element of its path), -1 for none."""
    leaf = []
    for r in records:
        path = str(r.get("categories") or "")
        # "A > B > C" is a path; otherwise commas separate the levels (Amazon's "A, B, C")
        parts = [p.strip() for p in path.split(">" if ">" in path else ",") if p.strip()]
        leaf.append(parts[-1] if parts else "")
    codes = {c: i for i, c in enumerate(sorted(set(leaf) - {""}))}
    return np.array([codes.get(c, -1) for c in leaf], np.int64)
