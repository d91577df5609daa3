"""Precomputed serving tables (the Gorse pattern): what training leaves for serving.

After the models are fitted, training writes into the version folder

- each known user's top-``N`` list by the primary model, what they bought left out
  (``candidates.npy``, int32 item indices, best first; ``candidate_scores.npy``), the
  explanation sources of every listed
  item (``candidate_sources.npy``: each generator's score normalised over the list) and
  the history item that explains it (``candidate_evidence.npy``, from ``because()``), the
  row of each user (``users.json``) and a fingerprint of the history the list was scored
  from (``user_fingerprints.npy``): a user whose history is unchanged is answered from the
  list, in time that does not depend on the catalogue;
- an item-to-item neighbour table (``item_neighbours.npy``, the ``M`` nearest items of
  each item under each neighbour model, -1 pads): a user with fresh events, a new user or
  a session is scored by the primary model on their list plus the neighbours of their
  recent items only.

Every table is a plain ``.npy`` loaded memory-mapped, so N serving workers share one copy.
A user's history is built here exactly as serving builds it (:func:`weighted_history`),
so the fingerprints match when nothing has changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.recommend._base import Recommender, mask_scores, top_k

log = logging.getLogger(__name__)

__all__ = ["HALF_LIFE_DAYS", "Precomputed", "best_generators", "explain_generators", "fingerprint", "neighbour_table",
           "precompute_lists", "weighted_history", "zscores"]

#: default recency half-life of event weights, in days (RecommendService.recency_half_life_days)
HALF_LIFE_DAYS = 30.0
#: models never used to explain a personal list (the ranker is explained by its generators;
#: popularity explains only the popular fallback)
NOT_EXPLAINING = frozenset({"stack", "popularity", "trending"})
META_FILE = "candidates.json"


def weighted_history(idx: np.ndarray, type_weights: np.ndarray, ts: np.ndarray | None,
                     half_life_days: float) -> tuple[np.ndarray, np.ndarray]:
    """One user's events (model item index or -1, event-type weight, time in seconds; time
    order) as the models read them: unknown items and weightless types dropped, each weight
    halved every ``half_life_days`` before the user's newest event."""
    idx = np.asarray(idx, np.int64)
    tw = np.asarray(type_weights, np.float64)
    keep = (idx >= 0) & (tw > 0)
    h = idx[keep]
    w = tw[keep].astype(np.float32)
    if ts is not None and len(h):
        t = np.asarray(ts, np.float64)[keep]
        w = w * np.exp2(-((t.max() - t) / 86400.0) / half_life_days).astype(np.float32)
    return h, w


def fingerprint(history: np.ndarray, weights: np.ndarray) -> int:
    """A stable 64-bit digest of a history (items and weights): equal only when unchanged."""
    d = hashlib.blake2b(np.asarray(history, np.int64).tobytes(), digest_size=8)
    d.update(np.asarray(weights, np.float32).tobytes())
    return int.from_bytes(d.digest(), "little")


def zscores(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` standardised by the mean and deviation of the finite ``reference`` scores
    (a generator's scores over the primary's top-N list): comparable across generators."""
    ref = np.asarray(reference)
    fin = np.isfinite(ref)
    if not fin.any():
        return np.asarray(values, np.float32)
    return ((values - ref[fin].mean()) / (ref[fin].std() + 1e-9)).astype(np.float32)


def explain_generators(models: dict[str, Recommender]) -> list[str]:
    """The generators whose normalised scores a personal hit carries, in the models' order."""
    return [name for name, m in models.items() if name not in NOT_EXPLAINING and m.n_items_ > 0]


def precompute_lists(models: dict[str, Recommender], primary: str, histories: Sequence[np.ndarray],
                     weights: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None, n: int = 100,
                     batch_size: int = 256, say: Callable[[str], None] = lambda m: None) -> dict[str, np.ndarray]:
    """Top-``n`` of the primary model for every history (in batches), without each user's
    ``exclude`` items (what they bought: never recommended by default), with each explaining
    generator's score of every listed item normalised over the list (:func:`zscores`) and
    the history item that explains it, asked of its best generator (``because``)."""
    prim = models[primary]
    gens = explain_generators(models)
    n_eff = min(n, prim.n_items_)
    u = len(histories)
    cand = np.full((u, n_eff), -1, np.int32)
    scores = np.zeros((u, n_eff), np.float32)
    sources = np.full((u, n_eff, len(gens)), np.nan, np.float32)
    evidence = np.full((u, n_eff), -1, np.int32)
    for s in range(0, u, batch_size):
        hs = [np.asarray(h, np.int64) for h in histories[s:s + batch_size]]
        ws = [np.asarray(w, np.float32) for w in weights[s:s + batch_size]]
        ps = np.array(prim.score([h[h < prim.n_items_] for h in hs], [w[h < prim.n_items_] for h, w in zip(hs, ws)]),
                      dtype=np.float32)
        if exclude is not None:
            mask_scores(ps, [np.asarray(e, np.int64) for e in exclude[s:s + batch_size]], None)
        top = top_k(ps, n_eff)
        cand[s:s + len(hs)] = top.indices
        scores[s:s + len(hs)] = top.scores
        valid = top.indices >= 0
        for g, name in enumerate(gens):
            m = models[name]
            gs = np.asarray(m.score([h[h < m.n_items_] for h in hs], [w[h < m.n_items_] for h, w in zip(hs, ws)]),
                            np.float32)
            rows = np.take_along_axis(gs, np.clip(top.indices, 0, m.n_items_ - 1), 1)
            rows = np.where(valid & (top.indices < m.n_items_), rows, np.nan)
            for r in range(len(hs)):
                ok = valid[r]
                sources[s + r, ok, g] = zscores(rows[r, ok], rows[r, ok])
        for r, h in enumerate(hs):  # the evidence of each listed item, from its best generator
            ok = np.flatnonzero(valid[r])
            bests = best_generators(sources[s + r, ok], gens, primary)
            for name in dict.fromkeys(bests):
                at = ok[[j for j, b in enumerate(bests) if b == name]]
                evidence[s + r, at] = models[name].because(h, top.indices[r, at])
        if (s // batch_size) % 20 == 0:
            say(f"  precomputed lists: {min(s + batch_size, u):,}/{u:,} users")
    return {"candidates": cand, "candidate_scores": scores, "candidate_sources": sources,
            "candidate_evidence": evidence}


def best_generators(sources: np.ndarray, generators: Sequence[str], fallback: str) -> list[str]:
    """For each row of normalised sources (one column per generator, NaN unknown), the
    generator that explains the item best (the first on ties); ``fallback`` when none can."""
    v = np.where(np.isfinite(sources), sources, -np.inf)
    best = np.argmax(v, axis=1) if v.shape[1] else np.zeros(len(v), np.int64)
    known = np.isfinite(sources).any(axis=1) if v.shape[1] else np.zeros(len(v), bool)
    return [generators[b] if k else fallback for b, k in zip(best, known)]


def neighbour_table(model: Recommender, m: int = 50, max_block_bytes: int = 1 << 26) -> np.ndarray:
    """(n_items, m) int32: each item's ``m`` most similar items under ``model`` (itself
    excluded; -1 pads), computed in blocks of rows so no n x n matrix is ever held. Item-kNN
    reads its sparse neighbour rows (only co-occurring items are neighbours)."""
    n = model.n_items_
    m = min(m, max(n - 1, 0))
    out = np.full((n, m), -1, np.int32)
    if m == 0:
        return out
    s = getattr(model, "S_", None)
    if s is not None:  # item-kNN: the rows are the neighbours
        s = s.tocsr()
        for i in range(n):
            lo, hi = s.indptr[i], s.indptr[i + 1]
            c, v = np.asarray(s.indices[lo:hi]), np.asarray(s.data[lo:hi])
            keep = (v > 0) & (c != i)
            c, v = c[keep], v[keep]
            order = np.lexsort((c, -v))[:m]
            out[i, : len(order)] = c[order]
        return out
    block = int(max(16, max_block_bytes // (4 * max(n, 1))))
    for start in range(0, n, block):
        items = np.arange(start, min(n, start + block))
        out[start:start + len(items)] = model.similar_items(items, m).indices
    return out


@dataclass
class Precomputed:
    """The serving tables of one model version (memory-mapped)."""

    meta: dict[str, Any]
    users: dict[str, int]
    candidates: np.ndarray  # (n_users, n) int32
    scores: np.ndarray  # (n_users, n) float32
    sources: np.ndarray  # (n_users, n, n_generators) float32
    fingerprints: np.ndarray  # (n_users,) uint64
    neighbours: np.ndarray | None  # (n_items, m_total) int32
    evidence: np.ndarray | None = None  # (n_users, n) int32: the explaining history item, -1 none

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    @property
    def generators(self) -> list[str]:
        return list(self.meta["generators"])

    def row(self, user_id: str, print_: int) -> tuple[int | None, bool]:
        """(the user's row or None, whether the history is the one the list was scored from)."""
        r = self.users.get(user_id)
        if r is None:
            return None, False
        return r, int(self.fingerprints[r]) == print_

    def complete(self, row: int, n_items: int) -> bool:
        """The list holds every item the model could rank (a catalogue shorter than the list)."""
        c = self.candidates
        return c.shape[1] >= n_items or (c.shape[1] > 0 and bool(c[row, -1] < 0))

    @staticmethod
    def save(folder: Path, meta: dict[str, Any], user_ids: Sequence[str], prints: Sequence[int],
             lists: dict[str, np.ndarray], neighbours: np.ndarray | None) -> None:
        for name, a in lists.items():
            np.save(folder / f"{name}.npy", a, allow_pickle=False)
        np.save(folder / "user_fingerprints.npy", np.asarray(prints, np.uint64), allow_pickle=False)
        if neighbours is not None:
            np.save(folder / "item_neighbours.npy", neighbours.astype(np.int32), allow_pickle=False)
        (folder / "users.json").write_text(json.dumps(list(user_ids)))
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @staticmethod
    def erase_user(folder: Path, user_id: str) -> bool:
        """Remove every trace of ``user_id`` from the tables of one version folder: the id in
        ``users.json`` becomes ``null`` (rows keep their places) and the user's row of every
        table is overwritten in place (-1 items, 0 scores), so the files hold neither the id nor
        the list derived from their history. Readers that map the files see the change."""
        path = folder / "users.json"
        if not path.exists():
            return False
        users = json.loads(path.read_text())
        if user_id not in users:
            return False
        row = users.index(user_id)
        for name, fill in (("candidates", -1), ("candidate_scores", 0), ("candidate_sources", 0),
                           ("candidate_evidence", -1), ("user_fingerprints", 0)):
            f = folder / f"{name}.npy"
            if f.exists():
                a = np.load(f, mmap_mode="r+", allow_pickle=False)
                a[row] = fill
                a.flush()
                del a
        users[row] = None
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(users))
        os.replace(tmp, path)
        return True

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Precomputed | None:
        """The tables of ``folder``, or ``None`` for a version trained before they existed."""
        if not (folder / META_FILE).exists():
            return None
        mode = "r" if mmap else None

        def arr(name: str) -> np.ndarray:
            a = np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
            return a.view(np.ndarray) if isinstance(a, np.memmap) else a  # shared pages, no memmap overhead

        users = json.loads((folder / "users.json").read_text())
        nb = folder / "item_neighbours.npy"
        ev = folder / "candidate_evidence.npy"
        return cls(json.loads((folder / META_FILE).read_text()),
                   {u: i for i, u in enumerate(users) if u is not None},
                   arr("candidates"), arr("candidate_scores"), arr("candidate_sources"),
                   arr("user_fingerprints"), arr("item_neighbours") if nb.exists() else None,
                   arr("candidate_evidence") if ev.exists() else None)
