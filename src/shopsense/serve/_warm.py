"""Start-up work done once in the lifespan, so the first shopper is not the one who waits."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["demo_users", "load_shared", "warm_up"]

log = logging.getLogger(__name__)


def warm_up(engine: Any) -> dict[str, str]:
    """Load the catalogue and every built capability; returns each capability's state.

    ``ready``: loaded. ``unavailable: ...``: not built or not installed, which is not
    fatal (the endpoint says so). ``failed: ...``: built but would not load, which
    keeps ``/readyz`` at 503.
    """
    from shopsense.errors import MissingDependencyError, NotFittedError, NotFoundError

    cat = engine.catalog()
    if not len(cat):
        return {"catalog": "empty"}
    probe = cat.ids[0]
    out = {"catalog": "ready"}
    if engine.searcher.manifest() is None:
        # a first search would build the index here, in every worker: `shopsense index` builds
        # it once, and the workers swap it in (Engine.swap_new_builds)
        out["search"] = "unavailable: no index built (shopsense index)"
    def search() -> None:
        engine.search(cat.products[0].title[:40], k=1)
        engine.searcher.warm()  # the spelling dictionary: else the first typo waits seconds

    for name, call in (("search", search),
                       ("recommend", lambda: engine.similar(probe, k=1)),
                       ("bundles", lambda: engine.complements(probe, k=1))):
        if name in out:
            continue
        try:
            call()
            out[name] = "ready"
        except (NotFittedError, MissingDependencyError, ImportError, NotFoundError) as exc:
            log.warning("warm-up of %s skipped: %s", name, exc)
            out[name] = f"unavailable: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported by /readyz
            log.error("warm-up of %s failed: %s", name, exc)
            out[name] = f"failed: {type(exc).__name__}: {exc}"
    return out


def load_shared(engine: Any) -> None:
    """Load what :func:`warm_up` loads but the encoder's model: the catalogue, the search index
    and its spelling dictionary, the recommendation and complement models (what
    :func:`shopsense.serve.main.preload_engine` shares between workers). Best effort: a part
    that will not load here is loaded, or reported, by each worker's own warm-up."""
    cat = engine.catalog()
    if not len(cat):
        return
    probe = cat.ids[0]
    steps = []
    if engine.searcher.manifest() is not None:  # never build an index here (it would encode)
        steps.append(("search", engine.searcher.warm))
    steps += [("recommend", lambda: engine.similar(probe, k=1)),
              ("bundles", lambda: engine.complements(probe, k=1))]
    for name, call in steps:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the worker's warm-up says what failed
            log.info("preload of %s skipped: %s", name, exc)


def demo_users(engine: Any, n: int = 6) -> list[str]:
    """Users with the richest histories, so the demo shows personal recommendations."""
    ev = engine.store.events()
    if not len(ev):
        return []
    users, counts = np.unique(ev.user_id.astype(str), return_counts=True)
    # a spread of history lengths, not only the heaviest users
    order = np.argsort(-counts, kind="stable")
    picks = order[np.linspace(0, min(len(order) - 1, 200), num=min(n, len(order))).astype(int)]
    return [str(users[i]) for i in dict.fromkeys(picks.tolist())]
