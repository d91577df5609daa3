"""The FastAPI app: this module only wires settings, state, middleware and routers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from shopsense.config import Settings
from shopsense.rerank import rules_version
from shopsense.serve._auth import KeyStore
from shopsense.serve._cache import ResponseCache
from shopsense.serve._errors import install_error_handlers
from shopsense.serve._limits import BodySizeLimit, RateLimiter
from shopsense.serve._metrics import Metrics
from shopsense.serve._privacy import Pseudonymizer
from shopsense.serve._state import ServeState
from shopsense.serve._warm import demo_users, warm_up
from shopsense.serve.routers import (
    bundles,
    carts,
    events,
    items,
    products,
    search,
    system,
    ui,
    users,
)
from shopsense.serve.routers.ui import STATIC

__all__ = ["DEMO_KEY_NAME", "create_app"]

log = logging.getLogger("shopsense.serve.access")

#: the storefront's key in demo mode; replaced at every demo start
DEMO_KEY_NAME = "storefront-demo"


def create_app(
    settings: Settings | None = None, *, engine: Any = None, require_read_key: bool = False,
    demo: bool = False, bench_dir: str | Path | None = None, warm: bool = True,
) -> FastAPI:
    """Build the API + storefront app for one engine home.

    ``engine`` may be passed in (tests, embedding); otherwise it is opened from
    ``settings.home`` in the lifespan and closed at shutdown. With ``demo`` a fresh
    write key is created for the bundled storefront and handed to it by
    ``GET /storefront/config``: for a local demo only, never for a public server.
    """
    settings = settings or (engine.settings if engine is not None else Settings.load())
    home = Path(settings.home)
    keys = KeyStore(settings.api_keys_file or home / "api_keys.json")
    state = ServeState(
        settings=settings, keys=keys, limiter=RateLimiter(settings.rate_limit_per_minute),
        metrics=Metrics(), cache=ResponseCache(version=lambda: rules_version(home)),
        pseudo=Pseudonymizer(home / ".log_secret"),
        bench_dir=Path(bench_dir) if bench_dir else Path.cwd() / "bench" / "results",
        require_read_key=require_read_key,
    )
    if demo:
        keys.revoke_named(DEMO_KEY_NAME)
        state.demo_key = keys.create("write", name=DEMO_KEY_NAME)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        if own:
            from shopsense.engine import Engine

            state.engine = Engine(settings=settings)
        else:
            state.engine = engine
        if warm:
            warm_up(state.engine)
        if demo:
            state.demo_users = demo_users(state.engine)
        try:
            yield
        finally:
            if own:
                state.engine.close()

    app = FastAPI(
        title="shopsense", version=_version(), lifespan=lifespan,
        description="Search and recommendations for an online shop. Reads are open unless the "
        "server requires a key; every write and admin call needs an `X-API-Key` with the "
        "`write` role. Errors: `{error, message, field}` with a 4xx status.",
    )
    app.state.shopsense = state
    install_error_handlers(app)

    @app.middleware("http")
    async def access(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        response = await call_next(request)
        dt = time.perf_counter() - t0
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        if not route.startswith("/static"):
            state.metrics.requests.labels(request.method, route, str(response.status_code)).inc()
            state.metrics.latency.labels(route).observe(dt)
        if log.isEnabledFor(logging.INFO):
            # the raw path can hold a user id: log the route template and a pseudonym instead
            params = request.scope.get("path_params", {})
            uid = params.get("user_id") or request.query_params.get("user_id")
            p = getattr(request.state, "principal", None)
            log.info("%s %s %d %.1fms user=%s client=%s", request.method, route,
                     response.status_code, dt * 1000, state.pseudo(uid), p.bucket if p else "-")
        return response

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Content-Type"])

    for module in (search, users, items, carts, bundles, events, products, system, ui):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from shopsense import __version__

    return __version__


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory shopsense.serve.main:app_from_env`` (settings from env)."""
    return create_app(Settings.load())
