"""Serving: what the engine calls for ``recommend``, ``similar``, ``next_items``.

Training lives in :mod:`shopsense.recommend._training` (``train`` here delegates to
it, then loads the new version); this module only loads ``home/models/CURRENT``
and answers.

Serving never stores user vectors: a user's history is read from the store and
folded in on each call, so new events change the next answer without retraining,
and forgetting a user only means dropping cached histories. Items added after
training are served from their text (content path) until the next training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import EVENT_WEIGHTS, Event, match_mask
from shopsense.context import ShopContext
from shopsense.errors import NotFittedError, NotFoundError, ValidationError
from shopsense.recommend._base import Recommender
from shopsense.results import Hit, ResultList

log = logging.getLogger(__name__)

#: generator name -> explanation source of the shared vocabulary
SOURCES = {"popularity": "popular", "trending": "trending", "ease": "cf", "als": "cf", "itemknn": "cf",
           "content": "content", "sasrec": "sequential", "stack": "cf"}


class RecommendService:
    """Recommendations for one shop (``ctx``: the engine's :class:`~shopsense.context.ShopContext`).
    Models load lazily from ``home/models/CURRENT``; hits carry evidence, the engine's
    finishing stage adds products and reasons."""

    def __init__(self, ctx: ShopContext, *, recency_half_life_days: float = 30.0, new_item_slots: int = 2,
                 new_item_min_similarity: float = 0.5) -> None:
        self.ctx = ctx
        self.recency_half_life_days = recency_half_life_days
        self.new_item_slots = new_item_slots
        self.new_item_min_similarity = new_item_min_similarity
        self._models: dict[str, Recommender] | None = None
        self._primary: str = ""
        self._item_ids: list[str] = []  # model index -> product id (trained items, then new ones)
        self._n_trained = 0
        self._manifest: dict[str, Any] = {}
        self._hist_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- paths -----------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.ctx.paths.models

    def current_version(self) -> str | None:
        p = self.ctx.paths.models_current
        return p.read_text().strip() if p.exists() else None

    # -- training --------------------------------------------------------------------------
    def train(self, progress: bool | Callable[[str], None] = False, **options: Any) -> dict[str, Any]:
        """Fit every generator and the ranker (:func:`shopsense.recommend.train_models`), save a
        new version, make it current and load it here."""
        from shopsense.recommend._training import train_models

        manifest = train_models(self.ctx, progress, **options)
        self._load()
        return manifest

    # -- loading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        from shopsense.recommend._ranker import (
            RankingStack,  # lightgbm: only when a stack was trained
        )

        version = self.current_version()
        if version is None:
            raise NotFittedError("No trained recommendation model; run `shopsense train` first.")
        folder = self.models_dir / version
        manifest = json.loads((folder / "manifest.json").read_text())
        models: dict[str, Recommender] = {}
        for name in manifest["models"]:
            if name == "stack":
                continue
            models[name] = Recommender.load(folder / name)
        if "stack" in manifest["models"]:
            stack = RankingStack.load(folder / "stack")
            stack.generators_ = {n: models[n] for n in stack.generator_names_}  # share, don't duplicate
            models["stack"] = stack
        self._models = models
        self._primary = manifest["primary"]
        self._manifest = manifest
        self._item_ids = json.loads((folder / "item_ids.json").read_text())
        self._n_trained = len(self._item_ids)
        self._hist_cache.clear()
        self._sync_items()

    def load(self) -> None:
        """Load the models of ``models/CURRENT`` now (the engine swaps in a new version this way)."""
        self._load()

    def _ensure(self) -> dict[str, Recommender]:
        if self._models is None:
            self._load()
        assert self._models is not None
        return self._models

    def _sync_items(self) -> None:
        """Append products added since training to the model index space; give them text vectors."""
        catalog = self.ctx.catalog()
        known = set(self._item_ids)
        new = [pid for pid in catalog.ids if pid not in known]
        if new:
            self._item_ids = self._item_ids + new
        self._model_index = {pid: i for i, pid in enumerate(self._item_ids)}
        # model index -> current catalogue row (-1: product deleted since training)
        self._to_catalog = np.array([catalog.index.get(pid, -1) for pid in self._item_ids], np.int64)
        content = (self._models or {}).get("content")
        vecs = self.ctx.item_vectors() if content is not None and len(self._item_ids) > content.n_items_ else None
        if content is not None and vecs is not None:
            full = np.zeros((len(self._item_ids), vecs.shape[1]), np.float32)
            ok = self._to_catalog >= 0
            full[ok] = vecs[self._to_catalog[ok]]
            content.set_item_vectors(full)  # type: ignore[attr-defined]
        pop = (self._models or {}).get("popularity")
        if pop is not None and hasattr(pop, "extend_items"):
            pop.extend_items(len(self._item_ids))

    # -- engine hooks -----------------------------------------------------------------------------
    def on_events(self, events: Sequence[Event]) -> None:
        """New events: the affected users' next call reads their fresh history."""
        for e in events:
            self._hist_cache.pop(e.user_id, None)

    def on_products_changed(self) -> None:
        if self._models is not None:
            self._sync_items()

    def forget_user(self, user_id: str) -> dict[str, Any]:
        """Drop everything held in memory about a user. Models keep no per-user vectors (users
        are folded in from the store on each call), so this is the cached history; the store's
        events are deleted by the engine."""
        removed = {"cached_history": user_id in self._hist_cache}
        self._hist_cache.pop(user_id, None)
        return removed

    # -- queries ------------------------------------------------------------------------------------
    def _history(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        if user_id not in self._hist_cache:
            ev = self.ctx.store.events(user_id=user_id)
            self._hist_cache[user_id] = self._events_to_history(
                list(ev.item_id), list(ev.type), np.asarray(ev.timestamp, np.float64))
        return self._hist_cache[user_id]

    def _events_to_history(self, items: Sequence[str | None], types: Sequence[str],
                           ts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        idx, w, t = [], [], []
        for k, (i, ty) in enumerate(zip(items, types)):
            j = self._model_index.get(i) if i else None
            wt = EVENT_WEIGHTS.get(str(ty), 0.0)
            if j is None or wt <= 0:
                continue
            idx.append(j); w.append(wt); t.append(ts[k] if ts is not None else float(k))
        w_arr = np.array(w, np.float32)
        if ts is not None and len(t):
            age_days = (max(t) - np.array(t)) / 86400.0
            w_arr = w_arr * np.exp2(-age_days / self.recency_half_life_days).astype(np.float32)
        return np.array(idx, np.int64), w_arr

    def _allowed(self, filters: Mapping[str, Any] | None, extra_exclude: np.ndarray | None = None) -> np.ndarray:
        catalog = self.ctx.catalog()
        live = self._to_catalog >= 0
        allowed = live.copy()
        if filters:
            allowed[live] &= match_mask(catalog, filters)[self._to_catalog[live]]
        if extra_exclude is not None and len(extra_exclude):
            allowed[extra_exclude] = False
        return allowed

    def recommend(self, user_id: str, k: int = 10, filters: Mapping[str, Any] | None = None,
                  exclude_purchased: bool = True, **options: Any) -> ResultList:
        """Top-k for a user. Users with no usable history get popular items in the filter's context."""
        self._ensure()
        hist, w = self._history(user_id)
        purchased = self._purchased(user_id) if exclude_purchased else np.zeros(0, np.int64)
        allowed = self._allowed(filters, purchased)
        if len(hist) == 0:
            return self._popular(k, allowed, filters, {"user_id": user_id, "personalised": False})
        return self._personal(hist, w, k, allowed, {"user_id": user_id, "personalised": True}, exclude_history=False)

    def _purchased(self, user_id: str) -> np.ndarray:
        ev = self.ctx.store.events(user_id=user_id)
        return np.array([self._model_index[i] for i, t in zip(ev.item_id, ev.type)
                         if t == "purchase" and i in self._model_index], np.int64)

    def similar(self, item_id: str, k: int = 10, filters: Mapping[str, Any] | None = None, **options: Any) -> ResultList:
        """Items like ``item_id``: CF neighbours blended with text neighbours (text alone for new items)."""
        models = self._ensure()
        j = self._model_index.get(item_id)
        if j is None:
            raise NotFoundError("product", item_id)
        allowed = self._allowed(filters, np.array([j]))
        scored: dict[int, dict[str, float]] = {}
        for name in ("ease", "itemknn", "als", "content"):
            m = models.get(name)
            if m is None or j >= m.n_items_:
                continue
            r = m.similar_items([j], k * 2, allowed=allowed[: m.n_items_])
            for rank, (i, s) in enumerate(zip(r.indices[0], r.scores[0])):
                if i >= 0:
                    # reciprocal-rank fusion: scores of different models are not comparable
                    scored.setdefault(int(i), {})[name] = 1.0 / (60 + rank)
        best = sorted(scored, key=lambda i: -sum(scored[i].values()))[:k]
        hits = []
        for i in best:
            src = max(scored[i], key=scored[i].get)
            source = "new_item" if j >= self._n_trained else SOURCES[src]
            ev = {"similar_to": item_id} if source == "new_item" else {"because_item": item_id}
            hits.append(self._hit(i, sum(scored[i].values()), source, scored[i], ev))
        return self._finish(hits, {"item_id": item_id})

    def next_items(self, session_events: Sequence[str | Event | Mapping[str, Any]], k: int = 10,
                   filters: Mapping[str, Any] | None = None, **options: Any) -> ResultList:
        """Next items for a session in progress (anonymous is fine): item ids or events, oldest first."""
        self._ensure()
        items, types = [], []
        for e in session_events:
            if isinstance(e, str):
                items.append(e); types.append("view")
            elif isinstance(e, Event):
                items.append(e.item_id); types.append(e.type.value)
            elif isinstance(e, Mapping):
                items.append(e.get("item_id")); types.append(str(e.get("type", "view")))
            else:
                raise ValidationError(f"session_events must hold item ids or events; got {type(e).__name__}",
                                      field="session_events")
        hist, w = self._events_to_history(items, types, None)
        allowed = self._allowed(filters)
        if len(hist) == 0:
            return self._popular(k, allowed, filters, {"session": True, "personalised": False})
        return self._personal(hist, w, k, allowed, {"session": True, "personalised": True},
                              exclude_history=True, sequential=True)

    # -- result building ------------------------------------------------------------------------------
    def _popular(self, k: int, allowed: np.ndarray, filters: Mapping[str, Any] | None,
                 info: dict[str, Any]) -> ResultList:
        models = self._ensure()
        pop = models.get("trending") if "trending" in models else models["popularity"]
        r = pop.recommend([np.zeros(0, np.int64)], k, allowed=allowed[: pop.n_items_])
        cat = (filters or {}).get("category")
        hits = [self._hit(int(i), float(s), pop.source, {pop.name: float(s)},
                          {"category": cat})
                for i, s in zip(r.indices[0], r.scores[0]) if i >= 0]
        return self._finish(hits, info)

    def _personal(self, hist: np.ndarray, w: np.ndarray, k: int, allowed: np.ndarray, info: dict[str, Any],
                  exclude_history: bool, sequential: bool = False) -> ResultList:
        models = self._ensure()
        primary = models[self._primary]
        n = primary.n_items_
        trained_hist = hist[hist < n]
        r = primary.recommend([trained_hist], k, weights=[w[hist < n]], exclude=exclude_history,
                              allowed=allowed[:n])
        items = [int(i) for i in r.indices[0] if i >= 0]
        scores = [float(s) for i, s in zip(r.indices[0], r.scores[0]) if i >= 0]
        # per-generator scores for explanations
        per_gen: dict[str, np.ndarray] = {}
        for name, m in models.items():
            if name in ("stack", "popularity", "trending"):
                continue
            if m.n_items_ <= 0:
                continue
            s = m.score([hist[hist < m.n_items_]], [w[hist < m.n_items_]])[0]
            fin = np.isfinite(s)
            z = (s - s[fin].mean()) / (s[fin].std() + 1e-9) if fin.any() else s
            per_gen[name] = z
        hits = []
        for i, sc in zip(items, scores):
            srcs = {g: float(z[i]) for g, z in per_gen.items() if i < len(z)}
            best = max(srcs, key=srcs.get) if srcs else self._primary
            if sequential and "sasrec" in srcs:
                best = "sasrec"
            hits.append(self._hit(i, sc, SOURCES.get(best, "cf"), srcs, self._evidence(best, hist, i)))
        hits = self._add_new_items(hits, hist, w, k, allowed)
        return self._finish(hits[:k], info)

    def _add_new_items(self, hits: list[Hit], hist: np.ndarray, w: np.ndarray, k: int, allowed: np.ndarray) -> list[Hit]:
        """Cold start: items added after training compete through their text alone, for at most
        ``new_item_slots`` places, when they are close enough to what the user touched."""
        content = (self._models or {}).get("content")
        if content is None or len(self._item_ids) <= self._n_trained or self.new_item_slots <= 0:
            return hits
        new = np.arange(self._n_trained, len(self._item_ids))
        new = new[allowed[new] & ~np.isin(new, hist)]
        if len(new) == 0:
            return hits
        uv = content.user_vectors([hist], [w])[0]  # type: ignore[attr-defined]
        sims = content.item_vectors_[new] @ uv  # type: ignore[attr-defined]
        order = np.argsort(-sims)[: self.new_item_slots]
        picks = [(int(new[o]), float(sims[o])) for o in order if sims[o] >= self.new_item_min_similarity]
        if not picks:
            return hits
        out = list(hits[: max(0, k - len(picks))])
        for pos, (i, s) in enumerate(picks):
            because = content.because(hist, np.array([i]))[0]  # type: ignore[attr-defined]
            ev = {"similar_to": self._item_ids[because]} if because >= 0 else {}
            out.insert(min(len(out), 2 + pos * 3), self._hit(i, s, "new_item", {"content": s}, ev))
        return out

    def _evidence(self, gen: str, hist: np.ndarray, item: int) -> dict[str, Any]:
        """The history item that explains ``item``, asked of the model through the contract
        (:meth:`Recommender.because`); the most recent item when the model cannot say, except
        for text similarity, where no close item means no claim."""
        if len(hist) == 0:
            return {}
        m = (self._models or {}).get(gen)
        b = int(m.because(hist, np.array([item]))[0]) if m is not None else -1
        if b < 0:
            if gen == "content":
                return {}
            b = int(hist[-1])
        return {"because_item": self._item_ids[b]}

    def _hit(self, i: int, score: float, source: str, sources: dict[str, float], evidence: dict[str, Any]) -> Hit:
        return Hit(id=self._item_ids[i], score=float(score), source=source, sources=sources, evidence=evidence)

    def _finish(self, hits: list[Hit], info: dict[str, Any]) -> ResultList:
        return ResultList(hits, {**info, "model_version": self._manifest.get("version"), "model": self._primary})
