"""The owner's analytics (``/analytics/...``), the exposure log (``POST /exposures``)
and the privacy duties (``/privacy/...``: a user's data export, retention).

Every analytics answer is an aggregate (no user id, no pseudonym) and needs a key
with the ``write`` (admin) role; CSV exports get Laplace noise when
``Settings.analytics_epsilon`` is set. With ``Settings.event_retention_days`` the
server deletes older events and exposures every ``retention_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel

from shopsense.errors import ValidationError
from shopsense.insights import Analytics, apply_retention, export_user, private_table, to_csv
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, writer
from shopsense.serve.routers.ui import STATIC
from shopsense.store import Exposure

log = logging.getLogger(__name__)

MAX_BATCH = 10_000


@contextlib.asynccontextmanager
async def _retention(app: FastAPI) -> AsyncIterator[None]:
    """Apply ``event_retention_days`` now and every ``retention_interval_s`` while serving."""
    state: ServeState = app.state.shopsense
    days = state.settings.event_retention_days

    async def loop() -> None:
        while True:
            try:
                if state.engine is not None:
                    out = await asyncio.to_thread(apply_retention, state.engine.store, days)
                    log.info("retention (%s days): %s", days, out)
            except Exception:  # a failed sweep is retried at the next interval
                log.exception("retention sweep failed")
            await asyncio.sleep(state.settings.retention_interval_s)

    task = asyncio.create_task(loop()) if days else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()


router = APIRouter(lifespan=_retention)


@router.get("/console", include_in_schema=False)
def console() -> FileResponse:
    """The shop owner's console: analytics, experiments, merchandising (static page)."""
    return FileResponse(STATIC / "console.html")


@router.get("/benchmarks", include_in_schema=False)
def benchmarks() -> FileResponse:
    """The benchmark charts (bench/results), moved off the system dashboard."""
    return FileResponse(STATIC / "benchmarks.html")


def _time(value: str | None, name: str) -> float | None:
    """``YYYY-MM-DD`` (UTC midnight) or seconds since the epoch."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValidationError(f"The '{name}' parameter must be a date YYYY-MM-DD or seconds since the epoch. "
                              f"Got {value!r} instead.", field=name) from None


def _analytics(engine: Any, since: str | None, until: str | None) -> Analytics:
    s, u = _time(since, "since"), _time(until, "until")
    if u is not None and len(until or "") == 10:
        u += 86400.0  # a date as 'until' includes that day

    def understand(q: str) -> dict[str, Any]:
        return engine.searcher.searcher.parse(q, True).as_dict()

    return Analytics(engine.store, since=s, until=u, understand=understand)


class ExposuresOut(BaseModel):
    received: int
    stored: int


@router.post("/exposures", response_model=ExposuresOut, tags=["exposures"],
             summary="Record impressions (list id, surface, variant, items shown) and the clicks, carts and "
             "purchases that came from a list (list id and position)")
def post_exposures(
    exposures: list[Exposure] = Body(..., min_length=1, max_length=MAX_BATCH),
    _: Principal = Depends(writer),
    engine: Any = Depends(get_engine),
) -> Any:
    return {"received": len(exposures), "stored": engine.store.add_exposures(exposures)}


@router.get("/analytics/summary", tags=["analytics"], summary="Headline figures of a time range")
def summary(
    since: str | None = Query(None, description="YYYY-MM-DD or epoch seconds"),
    until: str | None = Query(None, description="YYYY-MM-DD (inclusive) or epoch seconds"),
    _: Principal = Depends(writer),
    engine: Any = Depends(get_engine),
) -> dict[str, Any]:
    return _analytics(engine, since, until).summary()


@router.get("/analytics/{table}", tags=["analytics"],
            summary="One analytics table: daily, top-queries, zero-results, low-click, surfaces, positions, "
            "revenue, catalogue (JSON, or CSV with format=csv)")
def table(
    table: str = Path(..., description=", ".join(Analytics.TABLES)),
    since: str | None = Query(None, description="YYYY-MM-DD or epoch seconds"),
    until: str | None = Query(None, description="YYYY-MM-DD (inclusive) or epoch seconds"),
    limit: int = Query(20, ge=1, le=1000),
    surface: str | None = Query(None, max_length=32, description="positions: one surface only"),
    min_users: int = Query(1, ge=1, le=1000, description="queries typed by fewer shoppers are left out"),
    format: str = Query("json", pattern="^(json|csv)$"),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    if table not in Analytics.TABLES:
        raise ValidationError(f"Unknown analytics table {table!r}; allowed: {', '.join(Analytics.TABLES)}.",
                              field="table")
    a = _analytics(engine, since, until)
    kw: dict[str, Any] = {}
    if table in ("top-queries", "zero-results", "low-click"):
        kw = {"limit": limit, "min_users": min_users}
    elif table == "positions":
        kw = {"surface": surface}
    rows = a.table(table, **kw)
    if format == "csv":
        eps = state.settings.analytics_epsilon
        if eps:
            rows = private_table(rows, eps)
        return PlainTextResponse(to_csv(rows), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{table}.csv"',
                                          "X-Differential-Privacy": f"laplace epsilon={eps}" if eps else "off"})
    return {"table": table, "rows": rows, "since": a.since, "until": a.until, "generated_at": time.time()}


@router.get("/privacy/users/{user_id}/export", tags=["privacy"],
            summary="Everything stored about one user (events and exposures), as JSON")
def user_export(
    user_id: str = Path(..., min_length=1, max_length=256),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> dict[str, Any]:
    log.info("exported the data of user %s", state.pseudo(user_id))
    return export_user(engine.store, user_id)


@router.post("/privacy/retention", tags=["privacy"],
             summary="Delete events and exposures older than `days` (default: Settings.event_retention_days)")
def retention(
    days: float | None = Query(None, gt=0),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> dict[str, Any]:
    d = days or state.settings.event_retention_days
    if not d:
        raise ValidationError("No retention configured: pass days or set event_retention_days.", field="days")
    out = apply_retention(engine.store, d)
    state.products_changed()  # cached lists anywhere may have been computed from the deleted events
    return out
