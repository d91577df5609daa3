"""The exposure log: what each shopper was shown, and what came of it; plus the
privacy duties around it (a user's data export, the retention of old events)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shopsense.errors import check_param
from shopsense.store import Exposure, Store

__all__ = ["action_of", "apply_retention", "export_user", "impression_of"]


def impression_of(result: Any, user_id: str, *, session_id: str | None = None, variant: str | None = None,
                  experiment: str | None = None, shown: int | None = None, query: str | None = None,
                  timestamp: float | None = None) -> Exposure:
    """The impression of a finished result list (what :class:`shopsense.Engine` returns:
    its ``info`` holds ``list_id`` and ``surface``); ``shown`` limits it to the first
    items actually displayed."""
    info = result.info
    check_param("result", "a list without info['list_id']", "list_id" in info and "surface" in info,
                "a list returned by the engine (info['list_id'] and info['surface'])", "impression_of")
    ids = [h.id for h in result.hits][:shown]
    q = query
    if q is None and isinstance(info.get("query"), Mapping):
        q = info["query"].get("original")
    return Exposure(kind="impression", list_id=info["list_id"], user_id=user_id, surface=info["surface"],
                    session_id=session_id, variant=variant, experiment=experiment, query=q, items=ids,
                    n_results=int(info.get("total", len(result.hits))),
                    timestamp=timestamp if timestamp is not None else time.time())


def action_of(kind: str, result: Any, item_id: str, user_id: str, *, session_id: str | None = None,
              price: float | None = None, quantity: int = 1, timestamp: float | None = None) -> Exposure:
    """A click, add-to-cart or purchase of ``item_id`` from ``result`` (its position is looked up)."""
    ids = [h.id for h in result.hits]
    check_param("item_id", item_id, item_id in ids, "an id of the list's hits", "action_of")
    return Exposure(kind=kind, list_id=result.info["list_id"], user_id=user_id,  # type: ignore[arg-type]
                    surface=result.info["surface"], item_id=item_id, position=ids.index(item_id) + 1,
                    session_id=session_id, price=price, quantity=quantity,
                    timestamp=timestamp if timestamp is not None else time.time())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def export_user(store: Store, user_id: str) -> dict[str, Any]:
    """Everything the store holds about one user, as JSON-ready data: their events and
    their exposures (stored under a pseudonym, found through :meth:`Store.user_key`)."""
    ev = store.events(user_id=user_id)
    events = [{"item_id": ev.item_id[i], "type": ev.type[i], "timestamp": _iso(float(ev.timestamp[i])),
               "session_id": ev.session_id[i], "query": ev.query[i], "quantity": int(ev.quantity[i])}
              for i in range(len(ev))]
    exposures = [{**{k: v for k, v in r.items() if k not in ("user_key", "ts")}, "timestamp": _iso(r["ts"])}
                 for r in store.exposures(user_id=user_id)]
    return {"user_id": user_id, "exported_at": _iso(time.time()), "events": events, "exposures": exposures,
            "note": "exposures are stored under a keyed pseudonym of the user id, never the id itself"}


def apply_retention(store: Store, days: float, now: float | None = None) -> dict[str, Any]:
    """Delete events and exposures older than ``days``; returns what was removed."""
    check_param("days", days, isinstance(days, (int, float)) and days > 0, "a number of days > 0",
                "apply_retention")
    cutoff = (time.time() if now is None else now) - days * 86400.0
    removed = store.delete_before(cutoff)
    return {"cutoff": _iso(cutoff), "removed": removed}
