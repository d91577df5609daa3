"""Training: fit every recommender on the stored events and save a version.

Reads the store's events through the :class:`~shopsense.context.ShopContext`, maps
ids through the catalogue, fits every generator and the ranker on a time split (each
user's last interaction held out for the ranker and SASRec), refits the cheap
generators on everything, and saves a versioned folder ``home/models/<version>/``
(written to a temporary folder, then renamed) with a ``home/models/CURRENT``
pointer. Serving (:mod:`shopsense.recommend._service`) only loads what this writes,
so a request never waits for training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import EVENT_WEIGHTS
from shopsense.context import ShopContext
from shopsense.errors import NotFittedError
from shopsense.home import Home
from shopsense.recommend._base import Interactions, Recommender
from shopsense.recommend._cf import ALS, EASE, ItemKNN
from shopsense.recommend._content import ContentRecommender
from shopsense.recommend._popularity import Popularity, Trending
from shopsense.recommend._precompute import (
    HALF_LIFE_DAYS,
    Precomputed,
    explain_generators,
    fingerprint,
    neighbour_table,
    precompute_lists,
    weighted_history,
)
from shopsense.recommend._ranker import ItemSide
from shopsense.recommend._transition import Transition

__all__ = ["train_models"]

log = logging.getLogger(__name__)


def _now_version(models: Path) -> str:
    """A new version name that sorts by time: the second, the process, and a counter when this
    process already trained a version in the same second (two trains within one second
    collided on the folder name: seen when a test trained right after its fixture did)."""
    base = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid() % 10000:04d}"
    version, n = base, 1
    while (models / version).exists():
        version, n = f"{base}-{n}", n + 1
    return version


@dataclass(frozen=True)
class _Events:
    """The store's events as arrays: user, model item index (-1 unknown), type weight, time."""

    user: np.ndarray  # str objects
    item: np.ndarray  # int64
    weight: np.ndarray  # float64 (EVENT_WEIGHTS of the type)
    timestamp: np.ndarray  # float64
    purchase: np.ndarray  # bool

    @classmethod
    def read(cls, ctx: ShopContext, catalog: Any) -> _Events:
        ev = ctx.store.events()
        items = np.asarray(ev.item_id, dtype=object)
        types = np.asarray(ev.type, dtype=object).astype(str)
        idx = np.array([catalog.index.get(i, -1) if i else -1 for i in items], np.int64)
        w = np.array([EVENT_WEIGHTS.get(t, 0.0) for t in types], np.float64)
        return cls(np.asarray(ev.user_id, dtype=object).astype(str), idx, w,
                   np.asarray(ev.timestamp, np.float64), types == "purchase")


def _interactions(ev: _Events, n_items: int) -> Interactions:
    keep = (ev.item >= 0) & (ev.weight > 0)
    uniq, uidx = np.unique(ev.user[keep], return_inverse=True)
    return Interactions.from_arrays(uidx, ev.item[keep], n_users=len(uniq), n_items=n_items,
                                    weight=ev.weight[keep].astype(np.float32), timestamp=ev.timestamp[keep])


def _serving_histories(ev: _Events, half_life_days: float
                       ) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Each user's history, weights and purchases exactly as serving builds them from the
    store (:func:`weighted_history` over the user's events in store order), users with no
    history left out."""
    uniq, inv = np.unique(ev.user, return_inverse=True)
    order = np.argsort(inv, kind="stable")  # the store's time order within each user
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    ids, hists, weights, bought = [], [], [], []
    for u in range(len(uniq)):
        rows = order[bounds[u]:bounds[u + 1]]
        h, w = weighted_history(ev.item[rows], ev.weight[rows], ev.timestamp[rows], half_life_days)
        if len(h):
            b = ev.item[rows][ev.purchase[rows] & (ev.item[rows] >= 0)]
            ids.append(str(uniq[u])); hists.append(h); weights.append(w); bought.append(b)
    return ids, hists, weights, bought

def train_models(ctx: ShopContext, progress: bool | Callable[[str], None] = False, *, sasrec: bool = True,
                 sasrec_seconds: float = 300.0, ranker: bool = True, ease_max_items: int = 30000,
                 content: bool = True, candidates: int = 100, neighbours: int = 50,
                 neighbour_models: Sequence[str] = ("ease", "itemknn", "content"),
                 recency_half_life_days: float = HALF_LIFE_DAYS) -> dict[str, Any]:
    """Fit every generator and the ranker on the stored events, precompute the serving
    tables, save a new version under ``ctx.paths.models`` and make it current. Returns the
    manifest (with ``version``).

    ``content=False`` skips the text model (and the encoder) where items have no useful text.
    After fitting, each known user's top-``candidates`` list by the primary model and the
    ``neighbours`` nearest items of every item under each of ``neighbour_models`` that was
    fitted are saved beside the models (:mod:`shopsense.recommend._precompute`); histories
    are weighted with ``recency_half_life_days`` as serving weights them."""
    from shopsense.recommend._ranker import RankingStack  # lightgbm: loaded only to train
    from shopsense.recommend._sasrec import SASRec

    say = progress if callable(progress) else ((lambda m: print(m, flush=True)) if progress else (lambda m: None))
    t0 = time.perf_counter()
    catalog = ctx.catalog()
    if len(catalog) == 0:
        raise NotFittedError("No products in the store; ingest products before training.")
    events = _Events.read(ctx, catalog)
    data = _interactions(events, len(catalog))
    say(f"events: {len(data.user):,} interactions, {data.n_users:,} users, {data.n_items:,} items")
    if len(data.user) == 0:
        raise NotFittedError("No usable events (view/click/cart/purchase on known products); ingest events first.")
    vecs = _item_vectors(ctx, say) if content else None

    def generators() -> dict[str, Recommender]:
        gens: dict[str, Recommender] = {"popularity": Popularity(),
                                        "trending": Trending(half_life=7 * 86400.0)}
        gens["ease" if data.n_items <= ease_max_items else "itemknn"] = (
            EASE(l2=250.0) if data.n_items <= ease_max_items else ItemKNN())
        gens["als"] = ALS(factors=min(128, max(8, data.n_items // 4)), iterations=15)
        gens["transition"] = Transition()  # what came next after the last items (a sequential generator)
        if vecs is not None:
            gens["content"] = ContentRecommender()
        return gens

    def fit_all(gens: dict[str, Recommender], d: Interactions) -> None:
        for name, g in gens.items():
            s = time.perf_counter()
            if isinstance(g, ContentRecommender):
                g.fit(d, item_vectors=vecs)
            else:
                g.fit(d)
            say(f"  fitted {name} in {time.perf_counter() - s:.1f}s")

    # time split: each user's last interaction is the ranker's (and SASRec's) validation target
    seqs = data.sequences()
    last_pos = np.zeros(len(data.user), bool)
    order = np.lexsort((data.timestamp, data.user))
    ends = np.searchsorted(data.user[order], np.arange(data.n_users), side="right") - 1
    eligible = np.array([len(s) >= 3 for s in seqs])
    last_pos[order[ends[eligible]]] = True
    head = Interactions(data.user[~last_pos], data.item[~last_pos], data.weight[~last_pos],
                        data.timestamp[~last_pos], data.n_users, data.n_items)
    val_users = np.flatnonzero(eligible)
    val_hist = [seqs[u][:-1] for u in val_users]
    val_tgt = np.array([seqs[u][-1] for u in val_users], np.int64)
    metrics: dict[str, Any] = {}
    gens = generators()
    if ranker and len(val_users) >= 50:
        say("fitting generators on the time split")  # only the ranker learns from these fits
        fit_all(gens, head)
    if sasrec and len(val_users) >= 20:
        say(f"training SASRec (budget {sasrec_seconds:.0f}s)")
        sas = SASRec(max_seconds=sasrec_seconds, epochs=200, num_threads=1, text_init=vecs is not None)
        sas.fit(head, validation=(val_hist, val_tgt), item_vectors=vecs,
                progress=lambda e, i: say(f"  sasrec epoch {e}: loss {i['loss']:.3f}"
                                          + (f", val NDCG@10 {i['val_ndcg@10']:.4f}" if "val_ndcg@10" in i else "")))
        gens["sasrec"] = sas
    models: dict[str, Recommender] = {}
    primary = "ease" if "ease" in gens else "itemknn"
    if ranker and len(val_users) >= 50:
        say("training the LambdaMART ranker on held-out last interactions")
        side = _item_side(catalog, head)
        try:
            stack = RankingStack(candidates=50, last_item_generators=("ease", "transition")).fit(
                generators=gens, validation=(val_hist, val_tgt), item_side=side)
            metrics["ranker_candidate_recall"] = stack.candidate_recall_
            models["stack"] = stack
            primary = "stack"
        except Exception as exc:  # noqa: BLE001 - any ranker failure (e.g. no target among candidates)
            # leaves the generators serving, as before the ranker existed
            log.warning("ranker not trained: %s", exc)
            say(f"  ranker skipped: {exc}")
    say("refitting generators on all events")
    final = generators()
    fit_all(final, data)
    if "sasrec" in gens:
        final["sasrec"] = gens["sasrec"]
    if "stack" in models:
        models["stack"].generators_ = dict(final)  # type: ignore[attr-defined]
        models["stack"].item_side_ = _item_side(catalog, data)  # type: ignore[attr-defined]
    models.update(final)
    tables = _tables(models, primary, events, say, candidates=candidates, neighbours=neighbours,
                     neighbour_models=neighbour_models, half_life_days=recency_half_life_days)
    manifest = _save(ctx.paths, models, primary, catalog, data, metrics, time.perf_counter() - t0, tables)
    say(f"saved model version {manifest['version']} in {time.perf_counter() - t0:.1f}s")
    return manifest

def _tables(models: dict[str, Recommender], primary: str, events: _Events, say: Callable[[str], None], *,
            candidates: int, neighbours: int, neighbour_models: Sequence[str], half_life_days: float
            ) -> Callable[[Path], dict[str, Any]]:
    """Compute the serving tables; returns the function that saves them into a version folder."""
    t = time.perf_counter()
    # the models in the order serving loads them (the manifest's sorted names, the stack last)
    ordered = {n: models[n] for n in sorted(models) if n != "stack"}
    if "stack" in models:
        ordered["stack"] = models["stack"]
    user_ids, hists, weights, bought = _serving_histories(events, half_life_days)
    say(f"precomputing the top-{candidates} lists of {len(user_ids):,} users with {primary}")
    lists = precompute_lists(ordered, primary, hists, weights, bought, n=candidates, say=say)
    prints = [fingerprint(h, w) for h, w in zip(hists, weights)]
    nb_names = [n for n in neighbour_models if n in models and n != "stack"]
    tables = [neighbour_table(models[n], neighbours) for n in nb_names]
    nb = np.concatenate(tables, axis=1) if tables else None
    meta = {"n": int(lists["candidates"].shape[1]), "primary": primary, "generators": explain_generators(ordered),
            "half_life_days": half_life_days, "users": len(user_ids), "neighbour_models": nb_names,
            "neighbours_per_model": neighbours, "excludes": "purchased", "seconds": 0.0}
    meta["seconds"] = round(time.perf_counter() - t, 2)
    say(f"  serving tables in {meta['seconds']:.1f}s (neighbours from {', '.join(nb_names) or 'none'})")

    def save(folder: Path) -> dict[str, Any]:
        Precomputed.save(folder, meta, user_ids, prints, lists, nb)
        return meta

    return save


def _item_vectors(ctx: ShopContext, say: Callable[[str], None]) -> np.ndarray | None:
    say("encoding item texts")
    vecs = ctx.item_vectors()  # None without the 'embed' extra: CF still works
    if vecs is None:
        log.warning("content recommendations disabled: no item vectors")
    return vecs

def _item_side(catalog: Any, data: Interactions) -> ItemSide:
    pop = np.bincount(data.item, minlength=len(catalog)).astype(np.float32)
    age = ((time.time() - catalog.created_at) / 86400.0).astype(np.float32)
    leaf = np.asarray(catalog.category_leaf, dtype=object)
    codes = {c: i for i, c in enumerate(sorted(set(leaf) - {""}))}
    cat = np.array([codes.get(c, -1) for c in leaf], np.int64)
    return ItemSide(popularity=pop, age=age, price=catalog.price.astype(np.float32), category=cat)

def _save(paths: Home, models: dict[str, Recommender], primary: str, catalog: Any, data: Interactions,
          metrics: dict[str, Any], seconds: float, tables: Callable[[Path], dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    """Write ``models/<version>/`` through a temp folder and point ``models/CURRENT`` at it."""
    version = _now_version(paths.models)
    paths.models.mkdir(parents=True, exist_ok=True)
    tmp = paths.models / f".tmp-{version}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, m in models.items():
        if name == "stack":  # the stack saves its generators itself; keep only the booster side
            m.save(tmp / "stack")
        else:
            m.save(tmp / name)
    (tmp / "item_ids.json").write_text(json.dumps(list(catalog.ids)))
    precomputed = tables(tmp) if tables is not None else None
    manifest = {"version": version, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "primary": primary, "models": sorted(models), "n_items": len(catalog),
                "n_users": data.n_users, "n_interactions": len(data.user), "train_seconds": seconds,
                "metrics": metrics, "precomputed": precomputed, "format": "shopsense.recommend",
                "format_version": 2}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, paths.model_version(version))  # a half-written version is never visible under its name
    ptr = paths.models / ".CURRENT.tmp"
    ptr.write_text(version)
    os.replace(ptr, paths.models_current)
    return manifest
