"""Training pairs for encoder tuning: (query, relevant product row) from judgments or
from what shoppers did after searching, plus item-to-item pairs and hard negatives."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopsense.errors import check_param

__all__ = [
    "PairSet", "item_pairs_from_events", "mine_hard_negatives", "pairs_from_events",
    "pairs_from_judgments", "split_pairs_by_query",
]

log = logging.getLogger(__name__)

#: events that say "this product answered the search" (a view alone says little)
POSITIVE_AFTER_SEARCH = ("click", "add_to_cart", "purchase")


@dataclass
class PairSet:
    """Anchor texts with one positive product row each, and optional hard negatives.

    ``anchors[i]`` is a query (or, for item-to-item tuning, a product text); its
    positive is product row ``positives[i]`` of the catalogue the set was built for;
    ``negatives[i]`` is a product row or -1 for "none" (in-batch negatives only).
    ``weights[i]`` is how strongly the pair was observed (graded relevance, purchase
    beats click); pairs are de-duplicated so one row appears once per anchor.
    """

    anchors: list[str]
    positives: np.ndarray
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    # per anchor: every row known to be relevant, so mining never picks a true positive
    known: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positives = np.asarray(self.positives, dtype=np.int64)
        n = len(self.anchors)
        if len(self.negatives) != n:
            self.negatives = np.full(n, -1, dtype=np.int64)
        if len(self.weights) != n:
            self.weights = np.ones(n, dtype=np.float32)
        if not self.known:
            for a, p in zip(self.anchors, self.positives.tolist()):
                self.known.setdefault(a, set()).add(int(p))

    def __len__(self) -> int:
        return len(self.anchors)

    def subset(self, idx: Sequence[int] | np.ndarray) -> PairSet:
        idx = np.asarray(idx, dtype=np.int64)
        anchors = [self.anchors[i] for i in idx.tolist()]
        return PairSet(anchors, self.positives[idx], self.negatives[idx], self.weights[idx],
                       {a: self.known[a] for a in dict.fromkeys(anchors) if a in self.known})

    def queries(self) -> list[str]:
        return list(dict.fromkeys(self.anchors))


def pairs_from_judgments(queries: Sequence[str], gains: Sequence[Mapping[int, float]],
                         min_gain: float = 1.0, negative_max_gain: float | None = 0.5) -> PairSet:
    """Pairs from graded judgments: every judged row with ``gain >= min_gain`` is a positive.

    Rows judged at or below ``negative_max_gain`` become hard negatives of that query
    (raters said they do not answer it, so they are safer than mined ones); queries
    without such rows get -1 and may be filled by :func:`mine_hard_negatives`.
    """
    anchors: list[str] = []
    pos: list[int] = []
    neg: list[int] = []
    w: list[float] = []
    known: dict[str, set[int]] = {}
    rng = np.random.default_rng(0)
    for q, g in zip(queries, gains):
        good = [r for r, x in g.items() if x >= min_gain]
        bad = [r for r, x in g.items() if negative_max_gain is not None and x <= negative_max_gain]
        known[q] = {r for r, x in g.items() if x > (negative_max_gain if negative_max_gain is not None else 0)}
        for r in good:
            anchors.append(q)
            pos.append(int(r))
            neg.append(int(bad[rng.integers(len(bad))]) if bad else -1)
            w.append(float(g[r]))
    return PairSet(anchors, np.array(pos, dtype=np.int64), np.array(neg, dtype=np.int64),
                   np.array(w, dtype=np.float32), known)


def pairs_from_events(events: Any, index: Mapping[str, int], window_s: float = 1800.0,
                      types: Sequence[str] = POSITIVE_AFTER_SEARCH) -> PairSet:
    """Search-then-act pairs: a ``search`` event with a query, followed in the same
    session (or, without sessions, by the same user) within ``window_s`` seconds by a
    click, add-to-cart or purchase of a product, pairs the query with that product.

    A later search in the session starts a new query, so an action is credited to the
    most recent search only. ``events`` is a store ``EventArrays`` (time-ordered);
    ``index`` maps product id -> catalogue row (unknown products are skipped).
    """
    check_param("window_s", window_s, window_s > 0, "> 0", "pairs_from_events")
    weight = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
    last: dict[str, tuple[str, float]] = {}  # session key -> (query, time)
    best: dict[tuple[str, int], float] = {}
    wanted = set(types)
    for u, s, t, ts, item, q in zip(events.user_id.tolist(), events.session_id.tolist(), events.type.tolist(),
                                    events.timestamp.tolist(), events.item_id.tolist(), events.query.tolist()):
        key = f"s:{s}" if s else f"u:{u}"
        if t == "search":
            if q and str(q).strip():
                last[key] = (str(q).strip(), float(ts))
            continue
        if t not in wanted or item is None or key not in last:
            continue
        query, t0 = last[key]
        if float(ts) - t0 > window_s or float(ts) < t0:
            continue
        row = index.get(str(item))
        if row is None:
            continue
        k = (query, int(row))
        best[k] = max(best.get(k, 0.0), weight.get(t, 1.0))
    anchors = [q for q, _ in best]
    return PairSet(anchors, np.array([r for _, r in best], dtype=np.int64),
                   weights=np.array(list(best.values()), dtype=np.float32))


def item_pairs_from_events(events: Any, index: Mapping[str, int], texts: Sequence[str],
                           types: Sequence[str] = ("view", "click", "add_to_cart", "purchase"),
                           max_gap: int = 1, min_count: int = 1, max_pairs: int = 50_000) -> PairSet:
    """Item-to-item pairs: products that follow each other within ``max_gap`` steps in a
    session (co-view, co-purchase); the anchor is one product's text, the positive the
    other's row. Pairs seen at least ``min_count`` times are kept, most frequent first."""
    wanted = set(types)
    seqs: dict[str, list[int]] = {}
    for u, s, t, item in zip(events.user_id.tolist(), events.session_id.tolist(), events.type.tolist(),
                             events.item_id.tolist()):
        if t not in wanted or item is None:
            continue
        row = index.get(str(item))
        if row is None:
            continue
        seqs.setdefault(f"s:{s}" if s else f"u:{u}", []).append(int(row))
    counts: dict[tuple[int, int], int] = {}
    for seq in seqs.values():
        for i, a in enumerate(seq):
            for b in seq[i + 1 : i + 1 + max_gap]:
                if a != b:
                    k = (min(a, b), max(a, b))
                    counts[k] = counts.get(k, 0) + 1
    top = sorted(((c, k) for k, c in counts.items() if c >= min_count), reverse=True)[:max_pairs]
    return PairSet([texts[a] for _, (a, _b) in top], np.array([b for _, (_a, b) in top], dtype=np.int64),
                   weights=np.array([c for c, _ in top], dtype=np.float32))


def _bucket(text: str, seed: int) -> float:
    # salted so it is independent of shopsense.eval's dev/test hash (same digest otherwise)
    return int(hashlib.blake2b(f"tune-val:{seed}:{text}".encode(), digest_size=8).hexdigest(), 16) % 10_000 / 10_000


def split_pairs_by_query(pairs: PairSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[PairSet, PairSet]:
    """(train, validation) with every pair of one query on the same side (stable hash),
    so early stopping measures generalisation to unseen queries."""
    check_param("val_fraction", val_fraction, 0.0 <= val_fraction < 1.0, "in [0, 1)", "split_pairs_by_query")
    val = np.array([_bucket(a, seed) < val_fraction for a in pairs.anchors], dtype=bool)
    return pairs.subset(np.flatnonzero(~val)), pairs.subset(np.flatnonzero(val))


def mine_hard_negatives(pairs: PairSet, query_vecs: np.ndarray, doc_vecs: np.ndarray,
                        rank_range: tuple[int, int] = (10, 50), seed: int = 0,
                        overwrite: bool = False) -> PairSet:
    """Fill missing negatives with products the current encoder ranks high but that are
    not known positives of the query.

    ``query_vecs`` are unit vectors of ``pairs.queries()`` (that order), ``doc_vecs`` of
    every catalogue row. Skipping the very top ranks (``rank_range``) lowers the chance
    of picking an unjudged true match, the known failure mode of mined negatives.
    """
    lo, hi = rank_range
    check_param("rank_range", rank_range, 0 <= lo < hi, "0 <= lo < hi", "mine_hard_negatives")
    rng = np.random.default_rng(seed)
    qs = pairs.queries()
    qpos = {q: i for i, q in enumerate(qs)}
    cand: dict[str, list[int]] = {}
    hi = min(hi, doc_vecs.shape[0])
    for start in range(0, len(qs), 512):
        sims = query_vecs[start : start + 512] @ doc_vecs.T
        top = np.argpartition(-sims, hi - 1, axis=1)[:, :hi]
        for j in range(top.shape[0]):
            order = top[j][np.argsort(-sims[j, top[j]])]
            q = qs[start + j]
            known = pairs.known.get(q, set())
            cand[q] = [int(r) for r in order[lo:hi] if int(r) not in known]
    neg = pairs.negatives.copy()
    for i, q in enumerate(pairs.anchors):
        if (neg[i] < 0 or overwrite) and cand.get(q):
            c = cand[q]
            neg[i] = c[rng.integers(len(c))]
    assert len(qpos) == len(qs)
    return PairSet(list(pairs.anchors), pairs.positives.copy(), neg, pairs.weights.copy(), dict(pairs.known))
