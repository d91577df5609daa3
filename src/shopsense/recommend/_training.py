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
from collections.abc import Callable
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
from shopsense.recommend._ranker import ItemSide

__all__ = ["train_models"]

log = logging.getLogger(__name__)


def _now_version() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid() % 10000:04d}"


def _interactions(ctx: ShopContext, catalog: Any) -> tuple[Interactions, list[str], np.ndarray]:
    ev = ctx.store.events()
    types = np.asarray(ev.type, dtype=object)
    items = np.asarray(ev.item_id, dtype=object)
    idx = np.array([catalog.index.get(i, -1) if i else -1 for i in items], np.int64)
    w = np.array([EVENT_WEIGHTS.get(str(t), 0.0) for t in types], np.float32)
    keep = (idx >= 0) & (w > 0)
    users = np.asarray(ev.user_id, dtype=object)[keep]
    uniq, uidx = np.unique(users.astype(str), return_inverse=True)
    data = Interactions.from_arrays(uidx, idx[keep], n_users=len(uniq), n_items=len(catalog),
                                    weight=w[keep], timestamp=np.asarray(ev.timestamp)[keep])
    return data, list(uniq), keep

def train_models(ctx: ShopContext, progress: bool | Callable[[str], None] = False, *, sasrec: bool = True,
                 sasrec_seconds: float = 300.0, ranker: bool = True, ease_max_items: int = 30000) -> dict[str, Any]:
    """Fit every generator and the ranker on the stored events; save a new version under
    ``ctx.paths.models`` and make it current. Returns the manifest (with ``version``)."""
    from shopsense.recommend._ranker import RankingStack  # lightgbm: loaded only to train
    from shopsense.recommend._sasrec import SASRec

    say = progress if callable(progress) else ((lambda m: print(m, flush=True)) if progress else (lambda m: None))
    t0 = time.perf_counter()
    catalog = ctx.catalog()
    if len(catalog) == 0:
        raise NotFittedError("No products in the store; ingest products before training.")
    data, _, _ = _interactions(ctx, catalog)
    say(f"events: {len(data.user):,} interactions, {data.n_users:,} users, {data.n_items:,} items")
    if len(data.user) == 0:
        raise NotFittedError("No usable events (view/click/cart/purchase on known products); ingest events first.")
    vecs = _item_vectors(ctx, say)

    def generators() -> dict[str, Recommender]:
        gens: dict[str, Recommender] = {"popularity": Popularity(),
                                        "trending": Trending(half_life=7 * 86400.0)}
        gens["ease" if data.n_items <= ease_max_items else "itemknn"] = (
            EASE(l2=250.0) if data.n_items <= ease_max_items else ItemKNN())
        gens["als"] = ALS(factors=min(128, max(8, data.n_items // 4)), iterations=15)
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
    say("fitting generators on the time split")
    gens = generators()
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
            stack = RankingStack(candidates=50).fit(generators=gens, validation=(val_hist, val_tgt), item_side=side)
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
    manifest = _save(ctx.paths, models, primary, catalog, data, metrics, time.perf_counter() - t0)
    say(f"saved model version {manifest['version']} in {time.perf_counter() - t0:.1f}s")
    return manifest

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
          metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Write ``models/<version>/`` through a temp folder and point ``models/CURRENT`` at it."""
    version = _now_version()
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
    manifest = {"version": version, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "primary": primary, "models": sorted(models), "n_items": len(catalog),
                "n_users": data.n_users, "n_interactions": len(data.user), "train_seconds": seconds,
                "metrics": metrics, "format": "shopsense.recommend", "format_version": 1}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, paths.model_version(version))  # a half-written version is never visible under its name
    ptr = paths.models / ".CURRENT.tmp"
    ptr.write_text(version)
    os.replace(ptr, paths.models_current)
    return manifest
