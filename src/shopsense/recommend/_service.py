"""Serving: what the engine calls for ``recommend``, ``similar``, ``next_items``.

Training lives in :mod:`shopsense.recommend._training` (``train`` here delegates to
it, then loads the new version); this module only loads ``home/models/CURRENT``
and answers.

A call costs what its candidates cost, not what the catalogue costs (the Gorse
pattern, :mod:`shopsense.recommend._precompute`):

- a known user whose history is the one training scored is answered from their
  precomputed top-N list (filters, purchases and, for sessions, history removed);
- a user with fresh events, a new user with a short history and a session are folded
  in online: the primary model scores only their precomputed list (if any) plus the
  precomputed neighbours of their recent items (:meth:`Recommender.score_items`);
- hits carry each generator's score normalised over the primary's top-N list (not
  over the catalogue), and evidence asked of the model through ``because()``.

``recommend(..., precomputed=False)`` and ``next_items(..., precomputed=False)`` keep
the full-scoring path (every item scored by every model on each call): the reference
the fast paths are tested against, and the peer of ``bench/recommend_serving.py``.

Serving never stores user vectors: a user's history is read from the store and cached
until their next event, so new events change the next answer without retraining,
and forgetting a user only means dropping the cached history. Items added after
training are served from their text (content path) until the next training.
Model arrays and tables are memory-mapped read-only, so N workers share one copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import EVENT_WEIGHTS, Event, match_mask
from shopsense.context import ShopContext, UserCache
from shopsense.errors import NotFittedError, NotFoundError, ValidationError
from shopsense.recommend._base import Recommender, mask_scores, top_k
from shopsense.recommend._precompute import (
    HALF_LIFE_DAYS,
    Precomputed,
    best_generators,
    explain_generators,
    fingerprint,
    weighted_history,
    zscores,
)
from shopsense.results import Hit, ResultList

log = logging.getLogger(__name__)

#: generator name -> explanation source of the shared vocabulary
SOURCES = {"popularity": "popular", "trending": "trending", "ease": "cf", "als": "cf", "itemknn": "cf",
           "content": "content", "sasrec": "sequential", "transition": "sequential", "stack": "cf"}
#: the top-N list that normalises explanation scores when a version has no precomputed lists
DEFAULT_LIST = 100
#: how many of the most recent distinct history items lend their neighbours as candidates
RECENT_ITEMS = 20
#: how many popular items are ranked once per load for the fallback list
POPULAR_LIST = 1000


@dataclass(frozen=True)
class _User:
    """A user's history as the models read it, cached until their next event."""

    history: np.ndarray  # model item indices, time order
    weights: np.ndarray  # float32 event weight x recency decay
    purchased: np.ndarray  # model item indices bought
    print_: int  # fingerprint of (history, weights)
    did: dict[str, str] = field(default_factory=dict)  # item id -> strongest event type on it


#: event types by how much they say about a shopper, strongest first: a reason names the
#: strongest thing the shopper did with the item it points to ("Because you bought X")
_STRENGTH = ("purchase", "add_to_cart", "wishlist", "rating", "click", "view")


def strongest_events(items: Sequence[str | None], types: Sequence[str]) -> dict[str, str]:
    """Item id -> the strongest event type recorded on it (see :data:`_STRENGTH`)."""
    rank = {t: r for r, t in enumerate(_STRENGTH)}
    out: dict[str, str] = {}
    for i, t in zip(items, types):
        t = str(getattr(t, "value", t))
        if i and t in rank and (i not in out or rank[t] < rank[out[i]]):
            out[i] = t
    return out


def _with_event_types(result: ResultList, did: Mapping[str, str]) -> ResultList:
    """Each hit whose evidence points to a history item also says what the shopper did
    with it (``event_type``), so its reason can say "bought" or "added to your cart"."""
    if not did:
        return result
    hits = []
    for h in result.hits:
        ev = h.evidence or {}
        t = did.get(str(ev.get("because_item", "")))
        hits.append(h.with_(evidence={**ev, "event_type": t}) if t and "event_type" not in ev else h)
    return type(result)(hits, result.info)


class RecommendService:
    """Recommendations for one shop (``ctx``: the engine's :class:`~shopsense.context.ShopContext`).
    Models load lazily from ``home/models/CURRENT``; hits carry evidence, the engine's
    finishing stage adds products and reasons."""

    def __init__(self, ctx: ShopContext, *, recency_half_life_days: float = HALF_LIFE_DAYS, new_item_slots: int = 2,
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
        self._hist_cache: UserCache[str, _User] = UserCache(ctx.settings.user_cache_users)
        self._pre: Precomputed | None = None
        self._popular_rank: np.ndarray | None = None
        self._masks: dict[str, np.ndarray] = {}  # filters -> allowed mask, for the rare deep fallback

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

        options.setdefault("recency_half_life_days", self.recency_half_life_days)
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
            models[name] = Recommender.load(folder / name)  # arrays memory-mapped read-only
        if "stack" in manifest["models"]:
            # the generators loaded above are shared, not loaded twice
            models["stack"] = RankingStack.load(folder / "stack", generators=models)
        pre = Precomputed.load(folder)
        if pre is not None and (pre.meta.get("primary") != manifest["primary"]
                                or pre.generators != explain_generators(models)):
            log.warning("precomputed lists of %s do not match its models; scoring online", version)
            pre = None
        self._pre = pre
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

    def models(self) -> dict[str, Recommender]:
        """The loaded models by name (their arrays memory-mapped read-only)."""
        return dict(self._ensure())

    def neighbours(self, item_id: str) -> list[str]:
        """The precomputed neighbours of an item: the candidates a fresh event on it brings in
        (empty for an item added after training or a version without the tables)."""
        self._ensure()
        j = self._model_index.get(item_id)
        if j is None:
            raise NotFoundError("product", item_id)
        pre = self._pre
        if pre is None or pre.neighbours is None or j >= len(pre.neighbours):
            return []
        row = np.asarray(pre.neighbours[j])
        return [self._item_ids[i] for i in dict.fromkeys(row[row >= 0].tolist())]

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
        self._popular_rank = None
        self._masks = {}

    # -- engine hooks -----------------------------------------------------------------------------
    def on_events(self, events: Sequence[Event]) -> None:
        """New events: the affected users' next call reads their fresh history (and, since it
        no longer matches the precomputed one, is folded in online)."""
        for e in events:
            self._hist_cache.pop(e.user_id, None)

    def on_products_changed(self) -> None:
        if self._models is not None:
            self._sync_items()

    def known_users(self, limit: int | None = None) -> list[str]:
        """The users the current version precomputed a list for (training's users, in their
        row order; a deleted user is not among them), at most ``limit``."""
        self._ensure()
        if self._pre is None:
            return []
        users = list(self._pre.users)
        return users if limit is None else users[:limit]

    def cached_users(self) -> int:
        """How many users' histories this process holds (at most ``user_cache_users``)."""
        return len(self._hist_cache)

    def forget_user(self, user_id: str) -> dict[str, Any]:
        """Drop everything held in memory about a user. Models keep no per-user vectors (users
        are folded in from the store on each call), so this is the cached history; the store's
        events are deleted by the engine. A precomputed list is only served while the user's
        stored history still matches it, so an erased user's list is never used again."""
        removed: dict[str, Any] = {"cached_history": user_id in self._hist_cache}
        self._hist_cache.pop(user_id, None)
        # the precomputed lists of every saved version name their users: erase the id and the
        # list derived from their history, on disk and in the loaded tables
        models = self.ctx.paths.models
        folders = [f for f in models.iterdir() if f.is_dir() and not f.name.startswith(".")] if models.exists() else []
        removed["precomputed_lists"] = sum(Precomputed.erase_user(f, user_id) for f in folders)
        if self._pre is not None:
            self._pre.users.pop(user_id, None)
        return removed

    # -- queries ------------------------------------------------------------------------------------
    def _user(self, user_id: str) -> _User:
        u = self._hist_cache.get(user_id)
        if u is None:
            ev = self.ctx.store.events(user_id=user_id)
            items, types = list(ev.item_id), list(ev.type)
            hist, w = self._events_to_history(items, types, np.asarray(ev.timestamp, np.float64))
            bought = np.array([self._model_index[i] for i, t in zip(items, types)
                               if t == "purchase" and i in self._model_index], np.int64)
            u = self._hist_cache[user_id] = _User(hist, w, bought, fingerprint(hist, w),
                                                  strongest_events(items, types))
        return u

    def _history(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        u = self._user(user_id)
        return u.history, u.weights

    def _events_to_history(self, items: Sequence[str | None], types: Sequence[str],
                           ts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([self._model_index.get(i, -1) if i else -1 for i in items], np.int64)
        tw = np.array([EVENT_WEIGHTS.get(str(ty), 0.0) for ty in types], np.float64)
        return weighted_history(idx, tw, ts, self.recency_half_life_days)

    def _allowed(self, filters: Mapping[str, Any] | None, extra_exclude: np.ndarray | None = None) -> np.ndarray:
        """Bool mask over every model index (catalogue-sized: the full path and deep filters)."""
        key = json.dumps(filters, sort_keys=True, default=str) if filters else ""
        base = self._masks.get(key)
        if base is None:
            catalog = self.ctx.catalog()
            live = self._to_catalog >= 0
            base = live.copy()
            if filters:
                base[live] &= match_mask(catalog, filters)[self._to_catalog[live]]
            if len(self._masks) >= 32:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = base
        allowed = base.copy()
        if extra_exclude is not None and len(extra_exclude):
            allowed[extra_exclude] = False
        return allowed

    def _ok(self, items: np.ndarray, filters: Mapping[str, Any] | None, exclude: np.ndarray) -> np.ndarray:
        """The same test as :meth:`_allowed`, on ``items`` only (-1 pads are never ok)."""
        items = np.asarray(items, np.int64)
        valid = (items >= 0) & (items < len(self._to_catalog))
        rows = self._to_catalog[np.where(valid, items, 0)]
        ok = valid & (rows >= 0)
        if filters and ok.any():
            ok[ok] = match_mask(self.ctx.catalog(), filters, rows=rows[ok])
        elif filters:  # still validate the filters, as the full path does
            match_mask(self.ctx.catalog(), filters, rows=np.zeros(0, np.int64))
        if len(exclude):
            ok &= _not_in(items, exclude)
        return ok

    def recommend(self, user_id: str, k: int = 10, filters: Mapping[str, Any] | None = None,
                  exclude_purchased: bool = True, precomputed: bool = True, **options: Any) -> ResultList:
        """Top-k for a user. Users with no usable history get popular items in the filter's context.

        ``precomputed=False`` scores every item with every model (the reference path)."""
        self._ensure()
        u = self._user(user_id)
        exclude = u.purchased if exclude_purchased else np.zeros(0, np.int64)
        info = {"user_id": user_id, "personalised": True}
        if len(u.history) == 0:
            return self._popular(k, filters, exclude, {"user_id": user_id, "personalised": False}, precomputed)
        if not precomputed:
            return _with_event_types(
                self._personal_full(u.history, u.weights, k, filters, exclude, info, exclude_history=False), u.did)
        row, unchanged = self._pre.row(user_id, u.print_) if self._pre is not None else (None, False)
        # the lists leave purchases out: a call that keeps them is folded in online
        return _with_event_types(
            self._personal(u.history, u.weights, k, filters, exclude, info, exclude_history=False,
                           row=row, unchanged=unchanged and (exclude_purchased or len(u.purchased) == 0)), u.did)

    def _purchased(self, user_id: str) -> np.ndarray:
        return self._user(user_id).purchased

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
                   filters: Mapping[str, Any] | None = None, precomputed: bool = True,
                   **options: Any) -> ResultList:
        """Next items for a session in progress (anonymous is fine): item ids or events, oldest first.
        Sessions have no precomputed list: they are folded in online over the neighbours of
        their items (``precomputed=False``: every item scored)."""
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
        none = np.zeros(0, np.int64)
        if len(hist) == 0:
            return self._popular(k, filters, none, {"session": True, "personalised": False}, precomputed)
        info = {"session": True, "personalised": True}
        did = strongest_events(items, types)
        if not precomputed:
            return _with_event_types(
                self._personal_full(hist, w, k, filters, none, info, exclude_history=True, sequential=True), did)
        return _with_event_types(
            self._personal(hist, w, k, filters, none, info, exclude_history=True, sequential=True), did)

    # -- result building ------------------------------------------------------------------------------
    def _popular_model(self) -> Recommender:
        models = self._ensure()
        return models.get("trending") if "trending" in models else models["popularity"]

    def _popular(self, k: int, filters: Mapping[str, Any] | None, exclude: np.ndarray, info: dict[str, Any],
                 precomputed: bool = True) -> ResultList:
        pop = self._popular_model()
        cat = (filters or {}).get("category")
        if precomputed:
            if self._popular_rank is None:  # once per load (and per product change)
                self._popular_rank = pop.ranking(POPULAR_LIST)  # type: ignore[attr-defined]
            rank = self._popular_rank
            ok = self._ok(rank, filters, exclude)
            if ok.sum() >= k or len(rank) >= pop.n_items_:
                chosen = rank[ok][:k]
                sc = pop.score_items([np.zeros(0, np.int64)], chosen)[0]
                hits = [self._hit(int(i), float(s), pop.source, {pop.name: float(s)}, {"category": cat})
                        for i, s in zip(chosen, sc)]
                return self._finish(hits, {**info, "path": "precomputed"})
        allowed = self._allowed(filters, exclude)
        r = pop.recommend([np.zeros(0, np.int64)], k, allowed=allowed[: pop.n_items_])
        hits = [self._hit(int(i), float(s), pop.source, {pop.name: float(s)}, {"category": cat})
                for i, s in zip(r.indices[0], r.scores[0]) if i >= 0]
        return self._finish(hits, {**info, "path": "full"})

    def _list_size(self) -> int:
        return self._pre.n if self._pre is not None else DEFAULT_LIST

    def _personal(self, hist: np.ndarray, w: np.ndarray, k: int, filters: Mapping[str, Any] | None,
                  exclude: np.ndarray, info: dict[str, Any], exclude_history: bool, sequential: bool = False,
                  row: int | None = None, unchanged: bool = False) -> ResultList:
        """Personal top-k at a cost set by the candidates: the precomputed list of an unchanged
        user, else the primary model on the list plus the neighbours of the recent items."""
        models = self._ensure()
        pre = self._pre
        excl = np.union1d(exclude, hist) if exclude_history else exclude
        if pre is not None and row is not None and unchanged:
            items = np.asarray(pre.candidates[row], np.int64)
            ok = self._ok(items, filters, excl)
            pos = np.flatnonzero(ok)[:k]
            if len(pos) == k or pre.complete(row, models[self._primary].n_items_):
                chosen = items[pos]
                scores = np.asarray(pre.scores[row, pos], np.float32)
                table = np.asarray(pre.sources[row][pos], np.float32)
                srcs = [{g: float(v) for g, v in zip(pre.generators, t) if np.isfinite(v)} for t in table]
                if pre.evidence is not None and not sequential:  # nothing to ask the models
                    bests = best_generators(table, pre.generators, self._primary)
                    because = np.asarray(pre.evidence[row][pos], np.int64)
                    evidence = [self._claim(g, hist, int(b)) for g, b in zip(bests, because)]
                    hits = [self._hit(int(i), float(sc), SOURCES.get(g, "cf"), sr, ev)
                            for i, sc, sr, g, ev in zip(chosen, scores, srcs, bests, evidence)]
                else:
                    hits = self._hits(hist, chosen, scores, srcs, sequential)
                hits = self._add_new_items(hits, hist, w, k, filters, exclude)
                return self._finish(hits[:k], {**info, "path": "precomputed"})
        if pre is None or pre.neighbours is None:  # a version trained before the tables: score all
            return self._personal_full(hist, w, k, filters, exclude, info, exclude_history, sequential)
        primary = models[self._primary]
        n = primary.n_items_
        th, tw = hist[hist < n], w[hist < n]
        recent = _recent_distinct(th, RECENT_ITEMS)
        parts = [np.asarray(pre.neighbours[recent], np.int64).ravel()]
        if row is not None:
            parts.append(np.asarray(pre.candidates[row], np.int64))
        cand = np.unique(np.concatenate(parts))
        cand = cand[(cand >= 0) & (cand < n)]
        ok = self._ok(cand, filters, excl)
        if ok.sum() < k:  # thin history or narrow filters: add the popular list, then every allowed item
            pop = self._popular_model()
            if self._popular_rank is None:
                self._popular_rank = pop.ranking(POPULAR_LIST)  # type: ignore[attr-defined]
            cand = np.union1d(cand, self._popular_rank[self._popular_rank < n])
            ok = self._ok(cand, filters, excl)
            if ok.sum() < k:
                allowed = self._allowed(filters, excl)[:n]
                cand = np.union1d(cand, np.flatnonzero(allowed))
                ok = self._ok(cand, filters, excl)
        s = np.asarray(primary.score_items([th], cand, [tw])[0], np.float32)
        top = top_k(np.where(ok, s, -np.inf).astype(np.float32)[None, :], k)
        got = top.indices[0] >= 0
        chosen, scores = cand[top.indices[0][got]], top.scores[0][got]
        # the primary's top-N of what the user could be shown, filters aside: normalises the sources
        ref = top_k(np.where(np.isin(cand, excl), -np.inf, s).astype(np.float32)[None, :], self._list_size())
        ref_items = cand[ref.indices[0][ref.indices[0] >= 0]]
        srcs = self._sources(hist, w, ref_items, chosen, full=False, known={self._primary: (cand, s)})
        hits = self._hits(hist, chosen, scores, srcs, sequential)
        hits = self._add_new_items(hits, hist, w, k, filters, exclude)
        return self._finish(hits[:k], {**info, "path": "candidates"})

    def _personal_full(self, hist: np.ndarray, w: np.ndarray, k: int, filters: Mapping[str, Any] | None,
                       exclude: np.ndarray, info: dict[str, Any], exclude_history: bool,
                       sequential: bool = False) -> ResultList:
        """The reference path: the primary model and every explaining generator score every item."""
        models = self._ensure()
        primary = models[self._primary]
        n = primary.n_items_
        th, tw = hist[hist < n], w[hist < n]
        allowed = self._allowed(filters, exclude)
        s = np.asarray(primary.score([th], [tw]), np.float32)
        shown = s.copy()  # what the user could be shown, filters aside
        mask_scores(shown, [np.union1d(exclude, th) if exclude_history else exclude], None)
        ref = top_k(shown, self._list_size()).indices[0]
        masked = s.copy()
        mask_scores(masked, [th] if exclude_history else None, allowed[:n])
        r = top_k(masked, k)
        got = r.indices[0] >= 0
        chosen, scores = r.indices[0][got], r.scores[0][got]
        srcs = self._sources(hist, w, ref[ref >= 0], chosen, full=True)
        hits = self._hits(hist, chosen, scores, srcs, sequential)
        hits = self._add_new_items(hits, hist, w, k, None, np.zeros(0, np.int64), allowed=allowed)
        return self._finish(hits[:k], {**info, "path": "full"})

    def _sources(self, hist: np.ndarray, w: np.ndarray, ref: np.ndarray, chosen: np.ndarray, full: bool,
                 known: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> list[dict[str, float]]:
        """Each explaining generator's score of each chosen item, normalised over its scores of
        the primary's top-N list ``ref`` (catalogue-free; ``full`` scores every item instead).
        ``known``: scores a generator already gave (sorted items, scores), reused."""
        models = self._ensure()
        out: list[dict[str, float]] = [{} for _ in chosen]
        items = np.concatenate([ref, chosen]).astype(np.int64)
        for name in explain_generators(models):
            m = models[name]
            keep = hist < m.n_items_
            if known and name in known:  # every item here is among the scored candidates
                have, scored = known[name]
                vals = scored[np.searchsorted(have, items)]
            elif full:
                gs = np.asarray(m.score([hist[keep]], [w[keep]])[0], np.float32)
                vals = np.where(items < m.n_items_, gs[np.clip(items, 0, m.n_items_ - 1)], np.nan)
            else:
                vals = np.asarray(m.score_items([hist[keep]], items, [w[keep]])[0], np.float32)
                vals = np.where(np.isneginf(vals), np.nan, vals)
            z = zscores(vals[len(ref):], vals[: len(ref)])
            for j, v in enumerate(z):
                if np.isfinite(v):
                    out[j][name] = float(v)
        return out

    def _hits(self, hist: np.ndarray, chosen: np.ndarray, scores: np.ndarray, srcs: list[dict[str, float]],
              sequential: bool) -> list[Hit]:
        """Hits with the best-explaining generator as source and its evidence (asked once per
        generator for all of its items)."""
        bests = []
        for sr in srcs:  # as best_generators() picks from the precomputed table
            best = max(sr, key=sr.get) if sr else self._primary  # type: ignore[arg-type]
            if sequential and "sasrec" in sr:
                best = "sasrec"
            bests.append(best)
        evidence = self._evidence(bests, hist, chosen)
        return [self._hit(int(i), float(sc), SOURCES.get(b, "cf"), sr, ev)
                for i, sc, sr, b, ev in zip(chosen, scores, srcs, bests, evidence)]

    def _add_new_items(self, hits: list[Hit], hist: np.ndarray, w: np.ndarray, k: int,
                       filters: Mapping[str, Any] | None, exclude: np.ndarray,
                       allowed: np.ndarray | None = None) -> list[Hit]:
        """Cold start: items added after training compete through their text alone, for at most
        ``new_item_slots`` places, when they are close enough to what the user touched."""
        content = (self._models or {}).get("content")
        if content is None or len(self._item_ids) <= self._n_trained or self.new_item_slots <= 0:
            return hits
        new = np.arange(self._n_trained, len(self._item_ids))
        ok = allowed[new] if allowed is not None else self._ok(new, filters, exclude)
        new = new[ok & _not_in(new, hist)]
        if len(new) == 0:
            return hits
        sims = content.score_items([hist], new, [w])[0]
        order = np.argsort(-sims)[: self.new_item_slots]
        picks = [(int(new[o]), float(sims[o])) for o in order if sims[o] >= self.new_item_min_similarity]
        if not picks:
            return hits
        out = list(hits[: max(0, k - len(picks))])
        for pos, (i, s) in enumerate(picks):
            because = content.because(hist, np.array([i]))[0]
            ev = {"similar_to": self._item_ids[because]} if because >= 0 else {}
            out.insert(min(len(out), 2 + pos * 3), self._hit(i, s, "new_item", {"content": s}, ev))
        return out

    def _evidence(self, gens: Sequence[str], hist: np.ndarray, items: np.ndarray) -> list[dict[str, Any]]:
        """For each item, the history item that explains it, asked of its generator through the
        contract (:meth:`Recommender.because`, once per generator); the most recent item when
        the model cannot say, except for text similarity, where no close item means no claim."""
        out: list[dict[str, Any]] = [{} for _ in items]
        if len(hist) == 0:
            return out
        models = self._models or {}
        for gen in dict.fromkeys(gens):
            pos = [j for j, g in enumerate(gens) if g == gen]
            m = models.get(gen)
            bs = (m.because(hist, np.asarray(items, np.int64)[pos]) if m is not None
                  else np.full(len(pos), -1, np.int64))
            for j, b in zip(pos, bs):
                out[j] = self._claim(gen, hist, int(b))
        return out

    def _claim(self, gen: str, hist: np.ndarray, because: int) -> dict[str, Any]:
        """Evidence from a ``because()`` answer: the most recent item when the model cannot
        say, except for text similarity, where no close item means no claim."""
        if len(hist) == 0 or (because < 0 and gen == "content"):
            return {}
        return {"because_item": self._item_ids[because if because >= 0 else int(hist[-1])]}

    def _hit(self, i: int, score: float, source: str, sources: dict[str, float], evidence: dict[str, Any]) -> Hit:
        return Hit(id=self._item_ids[i], score=float(score), source=source, sources=sources, evidence=evidence)

    def _finish(self, hits: list[Hit], info: dict[str, Any]) -> ResultList:
        return ResultList(hits, {**info, "model_version": self._manifest.get("version"), "model": self._primary})


def _not_in(items: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """``~np.isin(items, exclude)``; a set for the short arrays of one call (no isin set-up)."""
    if len(items) > 256:
        return ~np.isin(items, exclude)
    ex = set(np.asarray(exclude).tolist())
    return np.fromiter((i not in ex for i in np.asarray(items).tolist()), bool, len(items))


def _recent_distinct(history: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most recent distinct items of a history (newest first)."""
    rev = history[::-1]
    _, first = np.unique(rev, return_index=True)
    return rev[np.sort(first)][:n]
