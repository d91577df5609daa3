"""Health, Prometheus metrics, and what the dashboard and storefront read."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from shopsense.serve._results import _clean
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness and counts (no key, no rate limit: for probes)")
def health(state: ServeState = Depends(get_state), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    from shopsense import __version__

    return {"status": "ok", "version": __version__, "products": engine.store.count_products(),
            "events": engine.store.count_events()}


@router.get("/livez", summary="Liveness: this worker process is up (no key, no rate limit)")
def livez() -> dict[str, Any]:
    return {"status": "alive", "worker": os.getpid()}


@router.get("/readyz", summary="Readiness: engine open, models loaded, shared state reachable; "
            "503 until then (no key, no rate limit)",
            responses={503: {"description": "not ready yet, or shutting down"}})
def readyz(state: ServeState = Depends(get_state)) -> JSONResponse:
    problems = []
    if not state.ready:
        problems.append("starting or shutting down")
    problems += [f"{name} {what}" for name, what in state.capabilities.items()
                 if what.startswith("failed")]
    shared = state.shared.name if state.shared is not None else None
    if state.shared is not None:
        try:
            state.shared.ping()
        except state.shared.errors as exc:
            problems.append(f"shared state ({shared}) unreachable: {exc}")
    body = {"status": "not ready" if problems else "ready", "problems": problems,
            "worker": os.getpid(), "shared_state": shared,
            "capabilities": state.capabilities or {"warm_up": "skipped"}}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(_: Principal = Depends(reader), state: ServeState = Depends(get_state),
            engine: Any = Depends(get_engine)) -> Response:
    state.metrics.products.set(engine.store.count_products())
    body, ctype = state.metrics.render()
    return Response(body, media_type=ctype)


@router.get("/stats", summary="Catalogue and event counts, built models, request latency")
def stats(_: Principal = Depends(reader), state: ServeState = Depends(get_state),
          engine: Any = Depends(get_engine)) -> dict[str, Any]:
    s = engine.stats()
    return _clean({
        "products": s["products"], "events": s["events"], "events_by_type": s["events_by_type"],
        "models": s["built"], "latency": state.metrics.latency_summary(),
        "cache_generation": state.cache.generation, "time": time.time(),
        "feed_position": state.feed.position if state.feed is not None else 0,
        "cache_shared": state.cache.shared, "worker": os.getpid(),
    })


@router.get("/bench/results", summary="Latest benchmark results (bench/results/*.json)")
def bench_results(_: Principal = Depends(reader), state: ServeState = Depends(get_state)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if state.bench_dir.is_dir():
        for path in sorted(state.bench_dir.glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                out[path.stem] = {"_meta": {"error": "unreadable"}}
    return _clean(out)


@router.get("/storefront/config", summary="What the bundled storefront needs to start")
def storefront_config(state: ServeState = Depends(get_state)) -> dict[str, Any]:
    # the demo key is only ever handed out when the server was started with --demo
    return {"demo_key": state.demo_key, "demo_users": state.demo_users,
            "require_read_key": state.require_read_key}
