"""The FastAPI app: this module only wires settings, state, middleware and routers."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsense.config import Settings
from shopsense.rerank import rules_version
from shopsense.serve._answers import PrecomputedLane, Rerender, render_for
from shopsense.serve._auth import KeyStore
from shopsense.serve._balance import ShedExcessConnections
from shopsense.serve._cache import ResponseCache
from shopsense.serve._errors import install_error_handlers, server_error
from shopsense.serve._limits import BodySizeLimit, RateLimiter
from shopsense.serve._metrics import Metrics
from shopsense.serve._open_shared import open_shared_state
from shopsense.serve._privacy import Pseudonymizer
from shopsense.serve._shared import SharedQueryVectors
from shopsense.serve._state import ServeState, render_answer
from shopsense.serve._sync import ChangeFeed, Syncer
from shopsense.serve._warm import demo_users, warm_up
from shopsense.serve._writer import EventWriter
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

__all__ = ["APP_ENV", "DEMO_KEY_NAME", "app_from_env", "create_app", "preload_engine", "preloaded_answers"]

log = logging.getLogger("shopsense.serve.access")

#: the storefront's key in demo mode; replaced at every demo start
DEMO_KEY_NAME = "storefront-demo"

#: how ``shopsense serve --workers N`` hands each worker process its app (JSON)
APP_ENV = "SHOPSENSE_SERVE_APP"


#: the cyclic collector's thresholds in a serving process (CPython's default: 700, 10, 10).
#: A request allocates thousands of objects, nearly all freed by reference counting, yet each
#: 700 allocations started a collection, and every tenth of those a gen-1 one: 1 worker
#: posting events at 32 / 64 connections spent 1.4 / 1.8 s of ~10 s of CPU collecting (4,700
#: gen-0, 430 gen-1 and 30 full collections of ~30 ms each, measured with gc.callbacks), and
#: its throughput fell from 32 to 64 connections. With these: 0.4 s, ~100 collections.
GC_THRESHOLDS = (20_000, 20, 20)


def _freeze_heap() -> None:
    """Move what the engine loaded (catalogue, models, indexes: millions of objects) out of
    the cyclic garbage collector's reach: every full collection walked all of them while
    requests waited, a pause that grows with the catalogue (the pre-fork servers' gc.freeze
    practice). Objects made later, per request, are collected as usual, less often
    (:data:`GC_THRESHOLDS`)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    _trim_heap()


def _trim_heap() -> None:
    """Hand the heap pages freed by loading (fits, temporary arrays) back to the OS: glibc
    keeps them otherwise, and each worker held them privately (Home Depot warm-up: 53 MB
    per worker, measured with /proc/<pid>/smaps_rollup). Only where glibc is the allocator."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl or another libc: nothing to trim
        pass


def create_app(
    settings: Settings | None = None, *, engine: Any = None, require_read_key: bool = False,
    demo: bool = False, bench_dir: str | Path | None = None, warm: bool = True,
    demo_key: str | None = None,
) -> FastAPI:
    """Build the API + storefront app for one engine home.

    ``engine`` may be passed in (tests, embedding); otherwise it is opened from
    ``settings.home`` in the lifespan and closed at shutdown. With ``demo`` a fresh
    write key is created for the bundled storefront (or ``demo_key`` is used, which
    ``shopsense serve --workers N`` creates once for all workers) and handed to it by
    ``GET /storefront/config``: for a local demo only, never for a public server.

    Several processes may serve the same home at once (``shopsense serve --workers
    N``): rate limits, cache invalidation and the engines' view of each other's
    writes go through the shared state (:mod:`shopsense.serve._shared`): Redis when
    ``settings.redis_url`` is set, else ``<home>/serve_state.sqlite3``.
    """
    settings = settings or (engine.settings if engine is not None else Settings.load())
    home = Path(settings.home)
    keys = KeyStore(settings.api_keys_file or home / "api_keys.json")
    shared = open_shared_state(settings)
    pseudo = Pseudonymizer(home / ".log_secret")
    builds: list[Any] = [None]  # the index and model versions served (set in the lifespan)
    state = ServeState(
        settings=settings, keys=keys, limiter=RateLimiter(settings.rate_limit_per_minute, shared),
        metrics=Metrics(), pseudo=pseudo,
        cache=ResponseCache(version=lambda: (rules_version(home), builds[0]), shared=shared, pseudo=pseudo,
                            ttl_s=settings.response_cache_ttl_s),
        bench_dir=Path(bench_dir) if bench_dir else Path.cwd() / "bench" / "results",
        require_read_key=require_read_key, shared=shared,
    )
    if demo:
        if demo_key is None:
            keys.revoke_named(DEMO_KEY_NAME)
            demo_key = keys.create("write", name=DEMO_KEY_NAME)
        state.demo_key = demo_key

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the feed's position is read before the engine loads anything, so a write made
        # by another worker meanwhile is replayed rather than missed
        feed = ChangeFeed(shared, state.pseudo, max_users=settings.user_cache_users)
        own = engine is None
        preloaded = _take_preloaded(settings) if own else None
        if preloaded is not None:  # loaded by the supervisor before it forked this worker
            state.engine, feed.position, state.answers = preloaded
        state.cache.reset(feed.position)
        feed.cache = state.cache
        if own and preloaded is None:
            from shopsense.engine import Engine

            # forked before any thread of this process's own starts (native pools such as
            # OpenBLAS's re-create themselves in a child)
            if warm and precomputes(settings) and threading.active_count() == 1:
                state.answers = _render_in_child(settings, feed.position)
            state.engine = Engine(settings=settings)
        elif not own:
            state.engine = engine
        feed.engine = state.engine
        state.feed = feed
        if settings.query_vector_cache > 0:
            _share_query_vectors(state.engine, shared)
        def precompute() -> None:
            state.answers = render_for(state.engine, settings.precomputed_answers, state.cache.stamp,
                                       render_answer)

        # after the start, in a thread of its own: the feed's thread goes on swapping builds
        rerender = Rerender(precompute)

        def swapped() -> None:
            builds[0] = build_versions(state.engine)
            if precomputes(settings):
                rerender.request()
            _freeze_heap()

        def tick() -> None:
            a = state.answers
            # not while one renders: the table it replaces stays old until it is done, and each
            # tick would queue another whole rendering behind it
            if a is not None and time.time() - a.built_at > settings.precomputed_answers_max_age_s \
                    and not rerender.busy:
                rerender.request()

        syncer = Syncer(feed, swapped=swapped, tick=tick)
        state.writer = EventWriter(state.engine.store, state.events_committed).start()
        try:
            if warm:
                state.capabilities = warm_up(state.engine)
            builds[0] = build_versions(state.engine)  # what warm-up (or the supervisor) loaded
            if demo:
                state.demo_users = demo_users(state.engine)
            if warm and precomputes(settings) and state.answers is None:
                precompute()
            _freeze_heap()
            syncer.start()
            state.ready = True
            yield
        finally:
            # uvicorn runs this once the in-flight requests finished (or its graceful timeout
            # passed): the events still queued are committed and answered, then the engine closes
            state.ready = False
            state.stop_queue()
            state.writer.close()
            syncer.stop()
            if own:
                state.engine.close()
            shared.close()

    app = FastAPI(
        title="shopsense", version=_version(), lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local files by routers.ui (no CDN)
        description="Search and recommendations for an online shop. Reads are open unless the "
        "server requires a key; every write and admin call needs an `X-API-Key` with the "
        "`write` role. Errors: `{error, message, field}` with a 4xx status.",
    )
    app.state.shopsense = state
    install_error_handlers(app)

    app.add_middleware(PrecomputedLane, state=state, routes=app.routes)
    app.add_middleware(AccessLog, state=state)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Content-Type"])
    app.add_middleware(ShedExcessConnections)  # outermost: a no-op unless workers balance connections

    from shopsense.serve.routers import (  # the owner's console (insights)
        analytics,
        experiments,
        merchandising,
    )

    for module in (search, users, items, carts, bundles, events, products, system, ui, analytics, experiments,
                   merchandising):
        app.include_router(module.router)
    from shopsense.serve.routers import assistant  # the shopping assistant (POST /assistant)

    app.include_router(assistant.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class AccessLog:
    """Metrics, the ``X-Worker`` header, a pseudonymised access log, and the JSON 500
    (with a request id) for an error nothing else handled.

    Plain ASGI: Starlette's ``@app.middleware("http")`` runs every response through a
    task group and a memory stream, which cost more CPU than a cached answer itself."""

    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app, self.state = app, state
        self.worker = str(os.getpid()).encode()  # which worker answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def send_with_worker(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-worker", self.worker)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_worker)
        except Exception as exc:
            if status:  # the answer had started: nothing can be sent instead
                raise
            # unhandled: a JSON 500 with a request id, counted and logged below
            await server_error(Request(scope), exc)(scope, receive, send_with_worker)
        finally:
            self._record(scope, status or 500, time.perf_counter() - t0)

    def _record(self, scope: Scope, status: int, dt: float) -> None:
        state = self.state
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        if not route.startswith("/static"):
            state.metrics.requests.labels(scope["method"], route, str(status)).inc()
            state.metrics.latency.labels(route).observe(dt)
            if status >= 500:
                state.metrics.server_errors.labels(route).inc()
        if log.isEnabledFor(logging.INFO):
            # the raw path can hold a user id: log the route template and a pseudonym instead
            request = Request(scope)
            uid = scope.get("path_params", {}).get("user_id") or request.query_params.get("user_id")
            p = scope.get("state", {}).get("principal")
            log.info("%s %s %d %.1fms user=%s client=%s", scope["method"], route, status, dt * 1000,
                     state.pseudo(uid), p.bucket if p else "-")


def _share_query_vectors(engine: Any, shared: Any) -> None:
    """The workers encode each query once between them (SQLite file or Redis)."""
    try:
        engine.encoder.shared_queries = SharedQueryVectors(shared)
    except Exception as exc:  # noqa: BLE001 - no encoder installed: nothing to share
        log.debug("query vectors not shared: %s", exc)


def build_versions(engine: Any) -> tuple[Any, ...]:
    """What identifies the index and model versions the engine serves (the index manifest's
    time, the model version it loaded): part of every cached answer's version, so that no
    answer of a build is served after the build was swapped out. Read from the engine, not
    from disk: an answer computed by the old model while ``shopsense train`` had already
    written the new version would otherwise be filed under the new one, and outlive the swap."""
    return engine.loaded_builds()


def _version() -> str:
    from shopsense import __version__

    return __version__


def app_env(settings: Settings, **app_kwargs: Any) -> str:
    """What :func:`app_from_env` rebuilds the app from in a worker process (JSON)."""
    values = settings.model_dump(mode="json")
    values["home"] = str(Path(settings.home).resolve())  # the workers may start elsewhere
    if settings.llm_api_key is not None:  # model_dump masks secrets
        values["llm_api_key"] = settings.llm_api_key.get_secret_value()
    return json.dumps({"settings": values, "app": {k: (str(v) if isinstance(v, Path) else v)
                                                   for k, v in app_kwargs.items()}})


#: (settings, engine, change-feed position, precomputed answers) loaded by :func:`preload_engine`
_PRELOADED: list[tuple[Settings, Any, int, Any]] = []


def preload_engine(settings: Settings) -> bool:
    """Load what every worker of ``shopsense serve --workers N`` would load (catalogue, search
    index and spelling dictionary, recommendation and complement models) in the supervisor,
    before it forks them: the workers then share those pages copy-on-write instead of each
    building its own copy (the catalogue's Python objects, the dictionary, hnswlib's graph).
    The store is closed before the fork and each worker opens its own (a SQLite connection
    must not cross a fork), no encoder model is loaded here (each worker loads its own query
    encoder: native thread pools do not survive a fork either), and the change feed's
    position is read before anything loads, so a worker replays every write made since.
    The known users' recommendations are rendered here too (:mod:`shopsense.serve._answers`),
    once for all workers, at that position.
    Returns False, keeping nothing, when the loading started a native thread."""
    from shopsense.engine import Engine

    shared = open_shared_state(settings)
    try:
        position = shared.head()
    finally:
        shared.close()
    threads_before = _native_threads()
    engine = Engine(settings=settings)
    try:
        warm_up(engine, encode=False)  # a part that will not load is reported by each worker's own
    finally:
        engine.store.close()
    answers = _render_in_child(settings, position, engine) if precomputes(settings) else None
    if _native_threads() > threads_before:  # e.g. an encoder loaded after all: not fork-safe
        logging.getLogger(__name__).warning("serve: the engine started threads while preloading; "
                                            "each worker loads its own")
        return False
    _PRELOADED[:] = [(settings, engine, position, answers)]
    _freeze_heap()
    return True


def _render_in_child(settings: Settings, position: int, engine: Any = None) -> Any:
    """The known users' answers, rendered in a forked child that sends them back whole
    (``None`` if it failed: the workers then compute every answer, as without them).

    Rendered in the serving process itself, its heap kept what 22,363 renderings left behind
    (histories read, result objects freed into half-empty arenas): Beauty, one worker 421 ->
    554 MB of PSS; and a supervisor's such heap, inherited by its workers, was copied page by
    page as they allocated into it (2 workers over 1: 1.39 -> 1.54). The child's heap goes
    with it; the answers arrive as one block. ``engine``: the supervisor's preloaded one (its
    store closed), else the child loads its own, as the supervisor would. Each worker's
    response cache starts at ``position`` (ResponseCache.reset), the stamp every user has
    there until a change names them."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_render_child, args=(send, engine, settings, position), daemon=True)
    child.start()
    send.close()
    try:
        answers = receive.recv()
    except EOFError:  # the child failed; its error is in the log
        answers = None
    finally:
        receive.close()
        child.join()
    return answers


def _render_child(send: Any, engine: Any, settings: Settings, position: int) -> None:
    try:
        if engine is None:
            from shopsense.engine import Engine

            engine = Engine(settings=settings)
            warm_up(engine, encode=False)  # what the serving engine will load: the same versions
        else:
            from shopsense.store import open_store

            engine.store = open_store(settings, engine.paths.sqlite)  # its own, never the parent's
        version = (rules_version(Path(settings.home)), build_versions(engine))
        send.send(render_for(engine, settings.precomputed_answers, lambda _user: (position, position, version, 0),
                             render_answer))
    finally:
        send.close()


def preloaded_answers() -> tuple[int, float] | None:
    """(users, seconds) of the answers :func:`preload_engine` rendered in this process, if any."""
    a = _PRELOADED[0][3] if _PRELOADED else None
    return None if a is None else (len(a), a.seconds)


def precomputes(settings: Settings) -> bool:
    """Whether the server renders the known users' recommendations ahead. Not with Redis:
    whether a worker is behind the feed is a round trip there, so every request would take
    the app's path anyway (serve/_answers.py)."""
    return bool(settings.precomputed_answers) and not settings.redis_url


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _take_preloaded(settings: Settings) -> tuple[Any, int, Any] | None:
    """The preloaded engine (its store reopened in this process), feed position and
    precomputed answers, once, when they were loaded for these settings."""
    if not _PRELOADED or _PRELOADED[0][0] != settings:
        return None
    _, engine, position, answers = _PRELOADED.pop()
    from shopsense.store import open_store

    engine.store = open_store(settings, engine.paths.sqlite)
    return engine, position, answers


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory shopsense.serve.main:app_from_env``: the app that
    ``shopsense serve`` put in ``SHOPSENSE_SERVE_APP``, else settings from the environment."""
    raw = os.environ.get(APP_ENV)
    if not raw:
        return create_app(Settings.load())
    spec = json.loads(raw)
    return create_app(Settings(**spec["settings"]), **spec["app"])
