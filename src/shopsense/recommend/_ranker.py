"""The ranker that merges every generator: LightGBM LambdaMART over candidate features.

Candidates are the union of each generator's top ``candidates`` items. Features per
(user, candidate): each generator's raw score, per-user z-score and rank (the item-
transition generator among them: how often the candidate came next after the user's
last items); the score from the user's last item alone under ``last_item_generators``
(a cheap sequential signal); item popularity, age
and price; how much of the user's history shares the candidate's category; history
length. The ranker is trained on a time split: generators fitted without each
user's last interaction, labels = that held-out interaction. Test targets are never
seen.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import ValidationError, require
from shopsense.recommend._base import FORMAT_VERSION, Interactions, Recommender

log = logging.getLogger(__name__)

_RANK_CAP = 1000
_FALLBACK = -1.0e4  # non-candidates rank after every candidate, in the first generator's order


@dataclass
class ItemSide:
    """Per-item side information; any array may be None (unknown for the dataset)."""

    popularity: np.ndarray  # interaction counts
    age: np.ndarray | None = None  # days since the item appeared (NaN unknown)
    price: np.ndarray | None = None  # NaN unknown
    category: np.ndarray | None = None  # int codes, -1 unknown

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"side_{k}": np.asarray(v) for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> ItemSide:
        return cls(**{k[5:]: a[k] for k in a if k.startswith("side_")})

    def padded(self, n: int) -> ItemSide:
        def pad(v: np.ndarray | None, fill: float) -> np.ndarray | None:
            if v is None or len(v) >= n:
                return v
            return np.concatenate([v, np.full(n - len(v), fill, dtype=np.asarray(v).dtype)])
        return ItemSide(pad(self.popularity, 0), pad(self.age, np.nan), pad(self.price, np.nan),
                        pad(self.category, -1))


class RankingStack(Recommender):
    """LambdaMART over the candidates of several fitted generators.

    Example
    -------
    >>> stack = RankingStack().fit(data, generators={"ease": ease, "als": als},
    ...                            validation=(histories, targets), item_side=side)  # doctest: +SKIP
    """

    name = "stack"
    source = "cf"

    def __init__(self, candidates: int = 50, n_estimators: int = 500, learning_rate: float = 0.05,
                 num_leaves: int = 31, min_child_samples: int = 50, max_train_users: int = 30000,
                 last_item_generators: tuple[str, ...] | list[str] = ("ease",), num_threads: int = 1,
                 seed: int = 0) -> None:
        self.candidates = candidates
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_train_users = max_train_users
        self.last_item_generators = list(last_item_generators)
        self.num_threads = num_threads
        self.seed = seed

    # -- features ---------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        names = []
        for g in self.generator_names_:
            names += [f"{g}_score", f"{g}_z", f"{g}_rank"]
        names += [f"{g}_last" for g in self.last_item_generators if g in self.generators_]
        return names + ["log_pop", "age_days", "price", "category_match", "hist_len", "n_sources"]

    def _features(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, X, fallback): candidate pairs, their features and a fallback score matrix."""
        import scipy.sparse as sp

        n, big = len(histories), self.n_items_
        cand = np.zeros((n, big), bool)
        per_gen = []
        fallback = None
        for name in self.generator_names_:
            g = self.generators_[name]
            s = np.full((n, big), -np.inf, np.float32)
            s[:, : g.n_items_] = g.score(histories, weights)[:, :big]
            for r, h in enumerate(histories):  # history is never a candidate
                h = h[(h >= 0) & (h < big)]
                s[r, h] = -np.inf
            finite = np.isfinite(s)
            cnt = np.maximum(finite.sum(1, keepdims=True), 1)
            s0 = np.where(finite, s, 0.0)
            mu = s0.sum(1, keepdims=True) / cnt
            sd = np.sqrt(np.maximum((np.where(finite, s - mu, 0.0) ** 2).sum(1, keepdims=True) / cnt, 1e-12))
            z = np.where(finite, (s - mu) / sd, np.nan).astype(np.float32)
            c = min(max(self.candidates, 1), big)
            rank_n = min(_RANK_CAP, big)
            top = np.argpartition(-s, rank_n - 1, axis=1)[:, :rank_n] if rank_n < big else np.tile(np.arange(big), (n, 1))
            order = np.argsort(-np.take_along_axis(s, top, 1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, 1)
            rank = np.full((n, big), _RANK_CAP, np.int16)
            np.put_along_axis(rank, top, np.arange(rank_n, dtype=np.int16)[None, :].repeat(n, 0), 1)
            topc = top[:, :c]
            ok = np.isfinite(np.take_along_axis(s, topc, 1))
            rr = np.repeat(np.arange(n), c).reshape(n, c)
            cand[rr[ok], topc[ok]] = True
            if fallback is None:
                fallback = np.nan_to_num(z, nan=-50.0)
            per_gen.append((np.where(finite, s, np.nan), z, rank))
        rows, cols = np.nonzero(cand)
        feats = []
        for s, z, rank in per_gen:
            feats += [s[rows, cols], z[rows, cols], rank[rows, cols].astype(np.float32)]
        for name in self.last_item_generators:
            if name not in self.generators_:
                continue
            g = self.generators_[name]
            last = [h[-1:] if len(h) else h for h in histories]
            sl = np.full((n, big), np.nan, np.float32)
            sl[:, : g.n_items_] = g.score(last)[:, :big]
            feats.append(sl[rows, cols])
        side = self.item_side_
        feats.append(np.log1p(side.popularity[cols]).astype(np.float32))
        feats.append(side.age[cols] if side.age is not None else np.full(len(cols), np.nan, np.float32))
        feats.append(side.price[cols] if side.price is not None else np.full(len(cols), np.nan, np.float32))
        lens = np.array([len(h) for h in histories], np.float32)
        if side.category is not None and side.category.max() >= 0:
            n_cat = int(side.category.max()) + 1
            cat = side.category.astype(np.int64)
            known = cat >= 0
            onehot = sp.csr_matrix((np.ones(known.sum(), np.float32), (np.nonzero(known)[0], cat[known])),
                                   shape=(big, n_cat))
            hist_rows = np.repeat(np.arange(n), [len(h) for h in histories])
            hist_cols = np.concatenate([np.asarray(h) for h in histories]) if n else np.zeros(0, np.int64)
            okh = (hist_cols >= 0) & (hist_cols < big)
            hm = sp.csr_matrix((np.ones(okh.sum(), np.float32), (hist_rows[okh], hist_cols[okh])), shape=(n, big))
            uc = np.asarray((hm @ onehot).todense()) / np.maximum(lens[:, None], 1)
            feats.append(np.where(known[cols], uc[rows, np.maximum(cat[cols], 0)], np.nan).astype(np.float32))
        else:
            feats.append(np.full(len(cols), np.nan, np.float32))
        feats.append(lens[rows])
        feats.append(sum((rank[rows, cols] < self.candidates).astype(np.float32) for _, _, rank in per_gen))
        x = np.column_stack(feats).astype(np.float32)
        return rows, cols, x, fallback

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, data: Interactions | None = None, *, generators: dict[str, Recommender] | None = None,
            validation: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
            item_side: ItemSide | None = None, batch_size: int = 1024) -> RankingStack:
        lgb = require("lightgbm", "recommend")
        if not generators or validation is None:
            raise ValidationError("RankingStack.fit needs fitted generators and validation=(histories, targets)",
                                  field="generators")
        self.generators_ = dict(generators)
        self.generator_names_ = list(generators)
        self.n_items_ = max(g.n_items_ for g in generators.values())
        side = item_side or ItemSide(np.zeros(self.n_items_, np.float32))
        self.item_side_ = side.padded(self.n_items_)
        hist, targets = validation
        rng = np.random.default_rng(self.seed)
        users = rng.permutation(len(hist))[: self.max_train_users]
        t0 = time.perf_counter()
        xs, ys, groups = [], [], []
        for s in range(0, len(users), batch_size):
            b = users[s:s + batch_size]
            rows, cols, x, _ = self._features([hist[i] for i in b], None)
            y = (cols == np.asarray(targets)[b][rows]).astype(np.float32)
            sizes = np.bincount(rows, minlength=len(b))
            pos = np.bincount(rows, weights=y, minlength=len(b)) > 0
            keep = pos[rows]  # users whose target is not among the candidates teach nothing
            xs.append(x[keep]); ys.append(y[keep]); groups.append(sizes[pos])
        x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)
        self.candidate_recall_ = float(len(g) / max(len(users), 1))
        n_val = max(1, len(g) // 10)
        cut = int(g[:-n_val].sum())
        model = lgb.LGBMRanker(objective="lambdarank", n_estimators=self.n_estimators,
                               learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                               min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                               colsample_bytree=0.9, lambdarank_truncation_level=20,
                               n_jobs=self.num_threads, random_state=self.seed, verbose=-1)
        model.fit(x[:cut], y[:cut], group=g[:-n_val], eval_X=(x[cut:],), eval_y=(y[cut:],), eval_group=[g[-n_val:]],
                  eval_at=[10], feature_name=self.feature_names(),
                  callbacks=[lgb.early_stopping(40, verbose=False)])
        self.booster_ = model.booster_
        self.best_iteration_ = int(model.best_iteration_ or self.n_estimators)
        self.fit_seconds_ = time.perf_counter() - t0
        log.info("ranker: %d rows, %d groups, candidate recall %.3f, %d trees, %.1fs", len(y), len(g),
                 self.candidate_recall_, self.best_iteration_, self.fit_seconds_)
        return self

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        rows, cols, x, fallback = self._features(histories, weights)
        out = (_FALLBACK + fallback).astype(np.float32)
        if len(rows):
            out[rows, cols] = self.booster_.predict(x, num_iteration=self.best_iteration_, num_threads=self.num_threads)
        return out

    def explain_sources(self, histories: Sequence[np.ndarray], items: np.ndarray,
                        weights: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Each generator's score for (history q, item items[q, j]): what a Hit's ``sources`` shows."""
        out = {}
        for name in self.generator_names_:
            g = self.generators_[name]
            s = g.score(histories, weights)
            it = np.clip(items, 0, g.n_items_ - 1)
            v = np.take_along_axis(s, it, 1)
            out[name] = np.where((items >= 0) & (items < g.n_items_), v, np.nan)
        return out

    def feature_importance(self) -> dict[str, float]:
        imp = self.booster_.feature_importance("gain")
        return {n: float(v) for n, v in zip(self.feature_names(), imp)}

    # -- persistence: generators in sub-folders, the booster as LightGBM's own text format --------
    def params(self) -> dict[str, Any]:
        return {**super().params(), "last_item_generators": list(self.last_item_generators)}

    def _state(self) -> dict[str, np.ndarray]:
        return self.item_side_.arrays()

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_side_ = ItemSide.from_arrays(arrays)

    def save(self, path: str | Path) -> Path:
        path = super().save(path)
        for name, g in self.generators_.items():
            g.save(path / f"gen_{name}")
        self.booster_.save_model(str(path / "ranker.txt"), num_iteration=self.best_iteration_)
        (path / "stack.json").write_text(json.dumps({"generators": self.generator_names_,
                                                     "best_iteration": self.best_iteration_,
                                                     "format_version": FORMAT_VERSION}))
        return path

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True, generators: dict[str, Recommender] | None = None
             ) -> RankingStack:
        """Load a saved stack; ``generators`` (already loaded, by name) are shared instead of
        loading the copies saved beside the booster."""
        lgb = require("lightgbm", "recommend")
        path = Path(path)
        model = cls._load_base(path, json.loads((path / "manifest.json").read_text()), mmap=mmap)
        meta = json.loads((path / "stack.json").read_text())
        model.generator_names_ = list(meta["generators"])
        given = generators or {}
        model.generators_ = {n: given[n] if n in given else Recommender.load(path / f"gen_{n}", mmap=mmap)
                             for n in model.generator_names_}
        model.booster_ = lgb.Booster(model_file=str(path / "ranker.txt"))
        model.best_iteration_ = int(meta["best_iteration"])
        return model  # type: ignore[return-value]
