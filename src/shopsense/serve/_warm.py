"""Start-up work done once in the lifespan, so the first shopper is not the one who waits."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["demo_users", "warm_up"]

log = logging.getLogger(__name__)


def warm_up(engine: Any) -> None:
    """Load the catalogue and every built capability; a missing one is logged, not fatal."""
    engine.catalog()
    cat = engine.catalog()
    if not len(cat):
        return
    probe = cat.ids[0]
    for name, call in (("search", lambda: engine.search(cat.products[0].title[:40], k=1)),
                       ("recommend", lambda: engine.similar(probe, k=1)),
                       ("bundles", lambda: engine.complements(probe, k=1))):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - not built or not installed: the endpoint will say so
            log.warning("warm-up of %s skipped: %s", name, exc)


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
