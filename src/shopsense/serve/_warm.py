"""Start-up work done once in the lifespan, so the first shopper is not the one who waits."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["demo_users", "warm_up"]

log = logging.getLogger(__name__)


def warm_up(engine: Any, encode: bool = True) -> dict[str, str]:
    """Load the catalogue and every built capability; returns each capability's state.

    ``ready``: loaded. ``unavailable: ...``: not built or not installed, which is not
    fatal (the endpoint says so). ``failed: ...``: built but would not load, which
    keeps ``/readyz`` at 503. ``encode=False``: all of it but the query encoder's model (the
    search index and its spelling dictionary are loaded without running a search), which is
    what :func:`shopsense.serve.main.preload_engine` loads before forking the workers.
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
        if encode:
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
