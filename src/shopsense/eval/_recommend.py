"""Leave-one-out protocol for recommenders (the S3-Rec/P5/TIGER standard).

Each user's last item is the test target, the second-to-last the validation
target; the model ranks ALL items (no sampled negatives) with the user's history
excluded. Tune on validation, report test. Used by tests, ``bench/recommend.py``
and ``shopsense eval recommend``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


# -- dataset readers (the files in ../shared/datasets/rec) ---------------------------
def read_user_sequences(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """``user_sequence.txt`` (user id, then item ids in time order) -> index sequences, item ids."""
    index: dict[str, int] = {}
    seqs = []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            seqs.append(np.array([index.setdefault(x, len(index)) for x in parts[1:]], np.int64))
    return seqs, list(index)


def read_office(folder: str | Path) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Amazon Office: sequences over item indices and the item records (title, brand, ...)."""
    folder = Path(folder)
    inter = json.loads((folder / "Office.inter.json").read_text())
    items = json.loads((folder / "Office.item.json").read_text())
    n = max(int(k) for k in items) + 1
    records = [items.get(str(i), {"title": "", "description": "", "brand": "", "categories": ""}) for i in range(n)]
    seqs = [np.asarray(inter[u], np.int64) for u in sorted(inter, key=int)]
    return seqs, records


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
