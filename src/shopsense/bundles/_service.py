"""``BundleService``: the engine's complements, cart completion, substitutes and bundles."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsense.bundles._complement import ComplementModel
from shopsense.bundles._mining import BASKET_EVENT_TYPES, Baskets, baskets_from_events
from shopsense.bundles._neighbors import fingerprint
from shopsense.bundles._optimize import solve_bundle
from shopsense.context import ShopContext
from shopsense.errors import NotFoundError, ValidationError, check_param
from shopsense.results import Hit, ResultList

if TYPE_CHECKING:
    from shopsense.catalog import Catalog

log = logging.getLogger(__name__)

__all__ = ["BundleService", "near_duplicate_titles", "title_key"]

#: token Jaccard at or above which two titles name the same product
NEAR_DUPLICATE_JACCARD = 0.75
#: text cosine at or above which an addition is a twin of a cart item, not a complement
NEAR_DUPLICATE_COSINE = 0.95
#: text cosine at or above which an addition in the same category as a cart item is a
#: substitute of it (another gel pen for a gel pen), whatever the co-purchase lift says:
#: same leaf category (rollerball pen for a rollerball pen), or only the same parent
#: (a ballpoint pen for a rollerball pen; staples and staplers differ in text)
SUBSTITUTE_COSINE_LEAF = 0.6
SUBSTITUTE_COSINE = 0.8
_NO_SIGNAL = "no purchase signal for these items yet"
#: below this a score is the popularity prior plus float rounding: no signal
_MIN_SIGNAL = 1e-8


def _content_key(params: dict[str, Any], ids: Sequence[str], baskets: Baskets, codes: np.ndarray | None,
                 embeddings: np.ndarray | None) -> str:
    """A name for everything a complement fit reads: the same key, the same model."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update("\x1f".join(map(str, ids)).encode())
    h.update(repr(fingerprint(baskets.matrix, baskets.time, codes, embeddings)).encode())
    return h.hexdigest()


def title_key(title: str) -> frozenset[str]:
    """The words of a title that identify a product (case, punctuation and pack sizes
    in brackets ignored), for near-duplicate checks."""
    t = re.sub(r"\([^)]*\)", " ", str(title).casefold())
    return frozenset(w for w in re.findall(r"[\w&+]+", t) if len(w) > 1 or w.isdigit())


def near_duplicate_titles(a: frozenset[str], b: frozenset[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> bool:
    """Whether two :func:`title_key` sets name the same product (equal, or token
    Jaccard >= ``threshold``)."""
    if not a or not b:
        return False
    return a == b or len(a & b) / len(a | b) >= threshold


class BundleService:
    """Complements, cart completion, substitutes and budgeted bundles for an engine.

    The model is (re)fitted lazily from the stored add-to-cart and purchase events
    the first time it is needed, at once after product changes, and after new basket
    events at most every ``refresh_s`` seconds (``Settings.bundles_refresh_s``; one
    basket barely moves shop-wide co-purchase counts, a refit costs seconds); a
    deleted user's baskets leave the counts at once.

    Example
    -------
    >>> svc = BundleService(engine)                                   # doctest: +SKIP
    >>> svc.complete_cart(["sku-1", "sku-7"], k=5).ids                # doctest: +SKIP
    >>> svc.bundle(["sku-1"], size=3, budget=40.0).info["total_price"]  # doctest: +SKIP
    """

    def __init__(self, ctx: ShopContext, model: ComplementModel | None = None, *, use_text: bool | None = None,
                 candidates: int = 30, refresh_s: float | None = None) -> None:
        self.ctx = ctx
        self.model_template = model or ComplementModel()
        self.use_text = ctx.settings.bundles_use_text if use_text is None else use_text
        self.candidates = candidates
        self._lock = threading.RLock()
        self.model_: ComplementModel | None = None
        self.baskets_: Baskets | None = None
        self._catalog: Catalog | None = None
        self._embeddings: np.ndarray | None = None
        self._stale = True  # products changed (or never fitted): refit before serving
        self._events_stale = False  # new basket events since the last fit
        self._fitted_at = 0.0
        self.refresh_s = float(refresh_s if refresh_s is not None else ctx.settings.bundles_refresh_s)

    # -- fitting -----------------------------------------------------------------------
    def fit(self) -> BundleService:
        """Mine the stored baskets and fit the complement model."""
        with self._lock:
            catalog = self.ctx.catalog()
            ev = self.ctx.store.events()
            baskets = baskets_from_events(ev.user_id, ev.item_id, ev.type, ev.timestamp, ev.session_id,
                                          catalog.index)
            self._catalog = catalog
            self._embeddings = self.ctx.item_vectors() if self.use_text and len(catalog) >= 2 else None
            self._fit_model(baskets)
            self._stale = self._events_stale = False
            self._fitted_at = time.monotonic()
        return self

    def _fit_model(self, baskets: Baskets) -> None:
        assert self._catalog is not None
        leaf = self._catalog.category_leaf
        names = sorted({c for c in leaf if c})
        pos = {c: i for i, c in enumerate(names)}
        codes = np.array([pos.get(c, -1) for c in leaf], dtype=np.int64) if names else None
        params = self.model_template.get_params()
        key = _content_key(params, self._catalog.ids, baskets, codes, self._embeddings)
        model = self._saved_model(key)
        if model is None:
            model = ComplementModel(**params)  # type: ignore[arg-type]
            model.fit(baskets.matrix, categories=codes, embeddings=self._embeddings, times=baskets.time)
            self._save_model(key, model)
            # served from the saved files too: two workers that fitted at once then map one copy
            model = self._saved_model(key) or model
        self.model_ = model
        self.baskets_ = baskets

    # -- the fitted model on disk ------------------------------------------------------
    # Every server worker fitted the same model from the same store at warm-up (Home Depot: 28 s
    # and 127 MB each). The first fit is saved under a key of everything the fit reads; a worker
    # that finds it maps its arrays (one page-cache copy for all) instead of fitting again.
    def _models_dir(self) -> Path | None:
        paths = getattr(self.ctx, "paths", None)
        return Path(paths.root) / "cache" / "complements" if paths is not None else None

    def _saved_model(self, key: str) -> ComplementModel | None:
        root = self._models_dir()
        if root is None or not (root / key / "manifest.json").exists():
            return None
        try:
            return ComplementModel.load(root / key)
        except (OSError, ValueError, KeyError) as exc:  # torn or foreign: fit instead
            log.warning("saved complement model %s not used: %s", key, exc)
            return None

    def _save_model(self, key: str, model: ComplementModel, keep: int = 2) -> None:
        """Saved atomically (a temporary folder renamed); only the ``keep`` newest are kept
        (a worker that mapped an older one keeps its mapping)."""
        root = self._models_dir()
        if root is None:
            return
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
            model.save(tmp)
            try:
                os.rename(tmp, root / key)
            except OSError:  # another worker saved the same key first
                shutil.rmtree(tmp, ignore_errors=True)
            self._prune_models(keep)
        except OSError as exc:  # a read-only home: serve the fitted model all the same
            log.warning("complement model not saved: %s", exc)

    def _prune_models(self, keep: int) -> None:
        root = self._models_dir()
        if root is None or not root.exists():
            return
        saved = sorted((p for p in root.iterdir() if not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for old in saved[keep:]:
            shutil.rmtree(old, ignore_errors=True)

    def _ready(self) -> tuple[ComplementModel, Catalog]:
        with self._lock:
            due = self._events_stale and time.monotonic() - self._fitted_at >= self.refresh_s
            if self._stale or due or self.model_ is None or self._catalog is None:
                self.fit()
            assert self.model_ is not None and self._catalog is not None
            return self.model_, self._catalog

    # -- engine hooks ------------------------------------------------------------------
    def on_events(self, events: Sequence[Any]) -> None:
        """New add-to-cart / purchase events change the counts: refit on a use at least
        ``refresh_s`` after the last fit."""
        if any(str(getattr(getattr(e, "type", ""), "value", getattr(e, "type", ""))) in BASKET_EVENT_TYPES
               for e in events):
            self._events_stale = True

    def on_products_changed(self) -> None:
        self._stale = True

    def forget_user(self, user_id: str) -> int:
        """Drop the user's baskets from the mined counts now; returns how many."""
        with self._lock:
            if self.baskets_ is None or self._catalog is None:
                # not loaded here: a saved model may still count the user's baskets (another
                # process fitted it); the next fit reads the store, which no longer has them
                self._prune_models(keep=0)
                return 0
            mine = self.baskets_.user == user_id
            n = int(mine.sum())
            if n:
                self._fit_model(self.baskets_.drop(~mine))
                self._prune_models(keep=1)  # no saved model counts the user's baskets any more
            return n

    # -- helpers -----------------------------------------------------------------------
    def _indices(self, catalog: Catalog, item_ids: Sequence[str]) -> list[int]:
        out = []
        for i in item_ids:
            j = catalog.index.get(i)
            if j is None:
                raise NotFoundError("product", i)
            if j not in out:
                out.append(j)
        return out

    def _because(self, model: ComplementModel, catalog: Catalog, sources: list[int], targets: list[int],
                 ) -> list[dict[str, Any]]:
        """For each target, the source item that explains it best, with the pair's lift.

        Observed pairs win (their co-purchase weight); otherwise the source closest
        in category affinity or text. Sparse blocks are sliced once per call.
        """
        if not targets:
            return []
        src, tg = np.asarray(sources), np.asarray(targets)
        S = model.pair_scores_
        contrib = S[src][:, tg].toarray() + S[tg][:, src].toarray().T
        contrib[src[:, None] == tg[None, :]] = -np.inf  # an item does not explain itself
        cp = model.copurchase_
        counts = cp.pair_counts_[src][:, tg].toarray()
        w = cp.item_weights_
        lift = counts * cp.total_weight_ / np.maximum(w[src][:, None] * w[tg][None, :], 1e-12)
        aff = np.zeros_like(contrib)
        if model.category_affinity_ is not None:
            cs, ct = model.categories_[src], model.categories_[tg]
            aff += np.where((cs[:, None] >= 0) & (ct[None, :] >= 0),
                            model.category_affinity_[np.maximum(cs, 0)][:, np.maximum(ct, 0)], 0.0)
        if model.neighbors_ is not None:
            N = model.neighbors_
            aff += N[src][:, tg].toarray() + N[tg][:, src].toarray().T
        aff[src[:, None] == tg[None, :]] = -np.inf
        out = []
        for q in range(len(tg)):
            a = int(np.argmax(contrib[:, q]))
            if contrib[a, q] > 0:
                out.append({"because_item": catalog.ids[src[a]], "lift": round(float(lift[a, q]), 4),
                            "support": round(float(counts[a, q])), "observed": True})
            else:
                a = int(np.argmax(aff[:, q]))
                out.append({"because_item": catalog.ids[src[a]], "lift": round(float(lift[a, q]), 4),
                            "observed": False})
        return out

    @staticmethod
    def _signal(model: ComplementModel, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scores less the popularity prior: what co-purchase, learned complements,
        category affinity or text twins say. Zero means the item was only ranked by
        popularity (a cart of items nobody bought yet), which is no complement."""
        prior = (float(getattr(model, "prior_weight", 0.0)) + 1e-6) * np.asarray(model.popularity_)[items]
        return np.asarray(scores, dtype=np.float64) - prior

    def _distinct(self, catalog: Catalog, cart: list[int], cand: list[int]) -> list[int]:
        """``cand`` without near-duplicates of the cart (same or nearly the same title,
        a text twin, or a close text neighbour in the same leaf category: a substitute)
        nor of an earlier candidate, order kept."""
        keys = [title_key(catalog.products[i].title) for i in cart]
        emb = self._embeddings
        twins = None
        if emb is not None and cart and cand and emb.shape[0] == len(catalog):
            c, a = np.asarray(cand), np.asarray(cart)
            cos = emb[c] @ emb[a].T
            fam = [{x for x in catalog.products[i].category[-2:] if x} for i in cart]
            same = np.array([[bool(fam_a & set(catalog.products[j].category[-2:])) for fam_a in fam]
                             for j in cand], dtype=bool).reshape(len(cand), len(cart))
            leaf = np.asarray(catalog.category_leaf, dtype=object)
            same_leaf = (leaf[c][:, None] == leaf[a][None, :]) & (leaf[c][:, None] != "")
            twins = ((cos >= NEAR_DUPLICATE_COSINE) | (same & (cos >= SUBSTITUTE_COSINE))
                     | (same_leaf & (cos >= SUBSTITUTE_COSINE_LEAF))).any(axis=1)
        out = []
        for pos, j in enumerate(cand):
            key = title_key(catalog.products[j].title)
            if (twins is not None and twins[pos]) or any(near_duplicate_titles(key, k) for k in keys):
                continue
            keys.append(key)
            out.append(j)
        return out

    def _allowed(self, catalog: Catalog, in_stock_only: bool) -> np.ndarray:
        return catalog.in_stock.copy() if in_stock_only else np.ones(len(catalog), dtype=bool)

    # -- public API --------------------------------------------------------------------
    def complete_cart(self, item_ids: Sequence[str], k: int = 10, in_stock_only: bool = True,
                      exclude_substitutes: bool = True) -> ResultList:
        """Rank additions for a whole cart: never the cart items, their substitutes nor
        near-duplicates of them (same product under another id, text twins), and only
        items some signal ties to the cart: with none (items nobody bought yet) the list
        is empty and ``info["reason"]`` says so, rather than popular items called complements."""
        check_param("k", k, isinstance(k, int) and 1 <= k <= 1000, "an int in [1, 1000]", "complete_cart")
        check_param("item_ids", item_ids, len(item_ids) > 0, "a non-empty list of product ids", "complete_cart")
        t0 = time.perf_counter()
        self._indices(self.ctx.catalog(), item_ids)  # unknown ids fail before any fitting
        model, catalog = self._ready()
        cart = self._indices(catalog, item_ids)
        # room for the near-duplicates and signal-less items dropped below
        ranked = model.rank([cart], k=min(len(catalog), 3 * k + 10), exclude_substitutes=exclude_substitutes,
                            allowed=self._allowed(catalog, in_stock_only))
        keep = ranked.indices[0] >= 0
        idx, sc = ranked.indices[0][keep], ranked.scores[0][keep]
        ok = self._signal(model, idx, sc) > _MIN_SIGNAL
        score = dict(zip(idx[ok].tolist(), sc[ok].tolist()))
        chosen = self._distinct(catalog, cart, idx[ok].tolist())[:k]
        hits = []
        evs = self._because(model, catalog, cart, chosen)
        for j, ev in zip(chosen, evs):
            s = score[j]
            src = "copurchase" if ev.pop("observed") else "complement"
            hits.append(Hit(catalog.ids[j], float(s), src, {src: float(s)}, evidence=ev,
                            product=catalog.products[j]))
        info: dict[str, Any] = {"cart": list(item_ids), "took_ms": round(1000 * (time.perf_counter() - t0), 2)}
        if not hits and not ok.any():
            info["reason"] = _NO_SIGNAL
        return ResultList(hits, info)

    def complements(self, item_id: str, k: int = 10, in_stock_only: bool = True) -> ResultList:
        """What goes with one item (complete_cart of a one-item cart)."""
        return self.complete_cart([item_id], k=k, in_stock_only=in_stock_only)

    def substitutes(self, item_id: str, k: int = 10, in_stock_only: bool = False) -> ResultList:
        """Items that could replace ``item_id``: similar text and category, rarely bought together."""
        check_param("k", k, isinstance(k, int) and 1 <= k <= 1000, "an int in [1, 1000]", "substitutes")
        self._indices(self.ctx.catalog(), [item_id])
        model, catalog = self._ready()
        (i,) = self._indices(catalog, [item_id])
        idx, sc = model.substitutes(i, k=len(catalog))
        hits = []
        for j, s in zip(idx, sc):
            if in_stock_only and not catalog.in_stock[j]:
                continue
            sim = float(self._embeddings[i] @ self._embeddings[j]) if self._embeddings is not None else 0.0
            ev = {"because_item": item_id, "similarity": round(sim, 4),
                  "lift": round(model.copurchase_.lift(i, int(j)), 4)}
            hits.append(Hit(catalog.ids[j], float(s), "content", {"substitute": float(s)}, evidence=ev,
                            product=catalog.products[j]))
            if len(hits) >= k:
                break
        return ResultList(hits, {"item": item_id})

    def bundle(self, item_ids: Sequence[str], size: int = 3, budget: float | None = None,
               max_per_category: int | None = 1, in_stock_only: bool = True, pair_weight: float = 1.0,
               ) -> ResultList:
        """Choose ``size - len(item_ids)`` items to go with ``item_ids``.

        Maximises the items' complement score for the given items plus their
        pairwise complementarity, with the whole bundle's price (given items
        included) within ``budget``, only in-stock additions, and at most
        ``max_per_category`` additions per category. Returns the added items;
        ``info`` has the total price, the objective and whether it is proven optimal.
        """
        check_param("item_ids", item_ids, len(item_ids) > 0, "a non-empty list of product ids", "bundle")
        check_param("size", size, isinstance(size, int) and len(item_ids) < size <= 20,
                    f"an int in [{len(item_ids) + 1}, 20] (more than the {len(item_ids)} given items)", "bundle")
        check_param("budget", budget, budget is None or (isinstance(budget, (int, float)) and budget >= 0
                                                          and np.isfinite(budget)),
                    "a finite number >= 0 or None", "bundle")
        check_param("max_per_category", max_per_category, max_per_category is None or (
            isinstance(max_per_category, int) and max_per_category >= 1), "an int >= 1 or None", "bundle")
        t0 = time.perf_counter()
        self._indices(self.ctx.catalog(), item_ids)
        model, catalog = self._ready()
        anchors = self._indices(catalog, item_ids)
        anchor_price = float(catalog.price[anchors].sum())
        info: dict[str, Any] = {"items": list(item_ids), "size": size, "budget": budget}
        if budget is not None and not np.isfinite(anchor_price):
            raise ValidationError("The 'budget' parameter of bundle needs the prices of the given items; "
                                  "some are unknown.", field="budget")
        left = None if budget is None else float(budget) - anchor_price
        n_pick = size - len(anchors)
        allowed = self._allowed(catalog, in_stock_only)
        if left is not None:
            # an unknown price cannot be checked against the budget
            allowed &= np.isfinite(catalog.price) & (catalog.price <= left + 1e-9)
        ranked = model.rank([anchors], k=max(self.candidates, n_pick), allowed=allowed)
        got = ranked.indices[0] >= 0
        cand = ranked.indices[0][got].astype(np.int64)
        # only items some signal ties to the anchors: ranking by the popularity prior alone
        # would sell a bundle of unrelated best-sellers (with an objective of 0, "optimal")
        rel = self._signal(model, cand, ranked.scores[0][got])
        has = rel > _MIN_SIGNAL
        distinct = set(self._distinct(catalog, anchors, cand[has].tolist()))
        sel = has & np.isin(cand, list(distinct))
        cand, rel = cand[sel], rel[sel]
        if left is not None and left < 0:
            cand, rel = cand[:0], rel[:0]
            info["reason"] = "the given items alone exceed the budget"
        elif not has.any():
            info["reason"] = _NO_SIGNAL
        scale = max(rel.max(initial=0.0), 1e-12)
        rel = np.maximum(rel, 0.0) / scale
        S = model.pair_scores_
        sub = S[cand][:, cand].toarray() if len(cand) else np.zeros((0, 0))
        pair = (sub + sub.T) / 2.0 / scale
        price = np.nan_to_num(catalog.price[cand], nan=0.0)
        cats = model.categories_[cand] if model.categories_ is not None else np.full(len(cand), -1)
        sol = solve_bundle(rel, pair, price, cats, n_pick, budget=left, max_per_category=max_per_category,
                           pair_weight=pair_weight)
        chosen = [int(cand[p]) for p in sol.chosen]
        hits = []
        evs = self._because(model, catalog, anchors + chosen, chosen)
        for p, j, ev in zip(sol.chosen, chosen, evs):
            ev.pop("observed")
            ev["price"] = None if not np.isfinite(catalog.price[j]) else float(catalog.price[j])
            ev["relevance"] = round(float(rel[p]), 4)
            ev["pair_bonus"] = round(float(pair_weight * pair[p, list(sol.chosen)].sum()), 4)
            hits.append(Hit(catalog.ids[j], float(rel[p] + ev["pair_bonus"]), "bundle",
                            {"complement": float(rel[p] * scale), "pairs": ev["pair_bonus"]},
                            evidence=ev, product=catalog.products[j]))
        items = anchors + chosen
        prices = catalog.price[items] if items else np.zeros(0)
        known = np.isfinite(prices)
        # one unknown price makes the total unknown: a sum over the priced items only would
        # read as the price of the whole bundle
        total = float(prices.sum()) if known.all() else None
        info.update({"total_price": None if total is None else round(total, 2),
                     "known_price_total": round(float(prices[known].sum()), 2) if known.any() else None,
                     "price_unknown": [catalog.ids[i] for i, k_ in zip(items, known) if not k_],
                     "budget_left": (round(float(budget) - total, 2) if budget is not None and total is not None
                                     else None),
                     "objective": round(sol.objective, 6),
                     # a proof of optimality over an all-zero objective says nothing
                     "optimal": bool(sol.optimal and chosen and sol.objective > 0), "nodes": sol.nodes,
                     "candidates": len(cand),
                     "took_ms": round(1000 * (time.perf_counter() - t0), 2)})
        return ResultList(hits, info)
