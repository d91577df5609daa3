"""What one running app holds, and the dependencies routers use to reach it.

The dependencies are coroutines that stay on the event loop when they can: the rate
limit spends a leased token, the feed check is one local read (SQLite), the API key
check a dictionary lookup and a hash. Only when the shared state must be written or
read over the network do they hand the call to a thread. FastAPI runs a plain ``def``
dependency in the thread pool, a hop that cost ~0.1 ms of CPU per dependency per
request (more than a cached answer itself), so a read now hops once, for its
computation (:meth:`ServeState.answer`), and not at all when the answer is cached.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from shopsense.config import Settings
from shopsense.errors import AuthError
from shopsense.results import ResultList
from shopsense.serve._auth import ApiKey, KeyStore
from shopsense.serve._cache import ResponseCache
from shopsense.serve._errors import ApiError
from shopsense.serve._limits import RateLimiter
from shopsense.serve._metrics import Metrics
from shopsense.serve._privacy import Pseudonymizer
from shopsense.serve._results import _clean, render
from shopsense.serve._shared import SharedState
from shopsense.serve._sync import ChangeFeed
from shopsense.serve._writer import EventWriter

try:  # the api extra's JSON writer; an environment installed before it was added uses json
    import orjson
except ImportError:  # imported once here: a failed import per answer would search sys.path each time
    orjson = None

if TYPE_CHECKING:
    from shopsense.engine import Engine
    from shopsense.serve._answers import PrecomputedAnswers

__all__ = [
    "COMPUTE_THREADS",
    "Principal",
    "ServeState",
    "compute_threads",
    "feed_behind",
    "get_engine",
    "get_settings",
    "get_state",
    "limit_wait",
    "principal_of",
    "reader",
    "render_answer",
    "shared_call",
    "writer",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: answers computed at once in threads by a worker with more than one core (its other
#: requests queue for a thread). More threads than this only take turns at the GIL: each
#: request waits for all of them. A one-core worker uses 1 (:func:`compute_threads`).
COMPUTE_THREADS = 4


def compute_threads() -> int:
    """Answers one worker computes at once in threads: 1 on a worker with one core
    (``OMP_NUM_THREADS``, set per worker by ``shopsense serve --workers N`` to cores // N;
    else every core), :data:`COMPUTE_THREADS` on a worker with more. On one core, 4 threads
    only took turns at the GIL: each search's latency grew with the cost of the three beside
    it, and a slow query's wait stretched fourfold (Home Depot, 2 workers, 32 connections,
    cache off, 9 runs each: p99 median 121 ms with 4 threads, 106 with 1, same throughput).
    One worker on 2 cores keeps 4: a search's ONNX run releases the GIL and another's Python
    work fills the second core (1 thread: 195-214 searches/s on 1.1 cores; 2 and 4 threads
    236-282 on 1.45, alike with 2 and 4, so it keeps the 4 it had)."""
    share = os.environ.get("OMP_NUM_THREADS", "").strip()
    cores = int(share) if share.isdigit() and int(share) > 0 else (os.cpu_count() or 1)
    return 1 if cores == 1 else COMPUTE_THREADS


#: an answer whose computation costs less CPU than this (a running average per kind of
#: answer) is computed on the event loop itself: the hop to a thread and back cost ~20% of
#: a precomputed recommendation's CPU (py-spy under wrk: queue notify, the loop's self-pipe,
#: anyio's bookkeeping). Searches (milliseconds of encoder and index work) keep their thread,
#: so the loop still answers cache hits and probes while one runs.
INLINE_BELOW_S = 0.002
#: ...and a kind computed on the loop goes back to threads only once its average passes
#: this. With one threshold, a kind whose costs straddle it flipped back and forth: served
#: recommendations cost 1-2 ms of CPU each on this machine, and while their average sat just
#: above 2 ms they took threads, where a busy worker's loop kept the GIL from them (1 worker,
#: 64 connections: 1,656 of 5,412 answers in threads, 443 requests/s, p99 601 ms).
THREAD_ABOVE_S = 0.004
#: on a one-core worker (:func:`compute_threads` is 1), an answer costing up to this much
#: CPU (and at least :data:`QUEUE_ABOVE_S`: a search's ~4 ms) is computed on the event loop
#: too, one at a time in the order the requests came (:meth:`ServeState.queued`), instead of
#: in the worker's one thread: each hop to the thread and back cost the loop and the thread
#: a GIL handover (py-spy, 2 workers, 32 connections: the self-pipe write waking the loop 9%
#: of a worker's samples). Home Depot searches, 2 workers, 32 connections, cache off, 6 runs
#: each: 419 req/s against 390, p99 median 100 ms against 109. Costlier answers (a
#: generative assistant's) keep the thread, so that the loop never stops answering probes
#: and cache hits for long.
QUEUE_BELOW_S = 0.05
#: ...and from this much: answers cheaper than a search (computed recommendations, 1-3 ms)
#: keep the thread. Queued too, they were slower and less steady (Beauty, cache off, 2
#: workers, 32 connections, 4 runs each: 1,718-2,545 req/s queued, mean 2,072, against
#: 2,281-2,383 in threads, mean 2,326).
QUEUE_ABOVE_S = 0.003


def shared_call(shared: SharedState | None, fn: Callable[[], T]) -> T:
    """Run one shared-state operation; an unreachable Redis (or a SQLite file locked for
    longer than its timeout) is a 503 the client may retry, never a silent local fallback."""
    errors: tuple[type[BaseException], ...] = shared.errors if shared is not None else ()
    try:
        return fn()
    except errors as exc:
        log.error("shared state unavailable: %s", exc)
        raise ApiError(503, "SharedStateUnavailable", "The state shared by the server's workers "
                       "(rate limits, cache versions) cannot be reached; retry shortly.",
                       headers={"Retry-After": "1"}) from exc


@dataclass
class ServeState:
    settings: Settings
    keys: KeyStore
    limiter: RateLimiter
    metrics: Metrics
    cache: ResponseCache
    pseudo: Pseudonymizer
    bench_dir: Path
    require_read_key: bool = False
    demo_key: str | None = None
    demo_users: list[str] = field(default_factory=list)
    shared: SharedState | None = None
    feed: ChangeFeed | None = None
    engine: Any = None  # set in the lifespan
    #: readiness: set once the engine is open and warm, cleared when shutdown starts
    ready: bool = False
    capabilities: dict[str, str] = field(default_factory=dict)
    #: commits ``POST /events`` batches in groups (started in the lifespan)
    writer: EventWriter | None = None
    #: each known user's default recommendations, rendered ahead (serve/_answers.py)
    answers: PrecomputedAnswers | None = None
    _compute: Any = None  # anyio.CapacityLimiter(compute_threads()), made on the event loop
    #: running average of each kind of answer's computation, CPU seconds (see INLINE_BELOW_S)
    _cost: dict[str, float] = field(default_factory=dict)
    #: the kinds computed on the loop now (see THREAD_ABOVE_S)
    _inline: dict[str, bool] = field(default_factory=dict)
    #: computations waiting for the loop, oldest first, and the task running them (see queued)
    _queue: Any = None
    _runner: Any = None

    # -- after a write: tell the engine, this worker's cache and the other workers --------
    def events_committed(self, events: Sequence[Any]) -> None:
        """The writer thread committed ``events`` (many requests' worth): the engine's
        in-memory hooks, the metrics, then one change on the feed naming their users, which
        also makes exactly those users' cached answers stale, here and in every worker."""
        self.engine.notify_events(events)
        self.metrics.events.inc(len(events))
        if self.feed is not None:
            self._tell(lambda: self.feed.events_stored(events))  # type: ignore[union-attr]
        else:
            self.cache.invalidate()

    def products_changed(self) -> None:
        if self.feed is not None:
            self._tell(self.feed.products_changed)
        else:
            self.cache.invalidate()

    def user_forgotten(self, user_id: str) -> None:
        if self.answers is not None:
            self.answers.forget(user_id)  # its stamp would keep it from being served; now it is gone
        if self.feed is not None:
            self._tell(lambda: self.feed.user_forgotten(user_id))  # type: ignore[union-attr]
        else:
            self.cache.invalidate()

    def _tell(self, publish: Callable[[], int]) -> None:
        errors: tuple[type[BaseException], ...] = self.shared.errors if self.shared is not None else ()
        try:
            publish()
        except errors as exc:
            self.cache.invalidate()  # at least this worker serves nothing older than the write
            log.error("write stored but not published to the other workers: %s", exc)
            raise ApiError(503, "SharedStateUnavailable", "The write was stored, but the other "
                           "workers could not be told; send it again (identical events are "
                           "not stored twice).", headers={"Retry-After": "1"}) from exc

    def _threads(self) -> Any:
        """The worker's compute threads (an anyio CapacityLimiter of :func:`compute_threads`
        tokens), made once, on the event loop, by the first answer that needs it."""
        if self._compute is None:
            import anyio

            self._compute = anyio.CapacityLimiter(compute_threads())
        return self._compute

    async def queued(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the event loop once the computations queued before it have run,
        one per turn of the loop, so that requests that arrived meanwhile are read and queued
        behind it. Running searches straight in their request's task served them about as fast,
        but in the order the loop happened to resume the tasks, not the order requests came:
        p99 125-142 ms against 94-128 queued (Home Depot, 2 workers, 32 connections, cache
        off). A request whose client left is dropped from the queue unrun."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._runner is None or self._runner.done():
            self._queue = asyncio.Queue()
            self._runner = loop.create_task(self._run_queue(self._queue))
        done = loop.create_future()
        self._queue.put_nowait((fn, done))
        return await done

    @staticmethod
    async def _run_queue(queue: Any) -> None:
        import asyncio

        while True:
            fn, done = await queue.get()
            if not done.cancelled():
                try:
                    done.set_result(fn())
                except Exception as exc:  # noqa: BLE001 - any error is the request's own, raised in its task
                    done.set_exception(exc)
            await asyncio.sleep(0)  # a turn of the loop: read new requests, send answers

    def stop_queue(self) -> None:
        """Stop the task that runs :meth:`queued` computations (at shutdown, once the
        in-flight requests are answered)."""
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None

    # -- reads: the cache first, then one thread for the computation ----------------------
    def saw(self, user_id: str | None) -> None:
        if self.feed is not None:
            self.feed.saw(user_id)  # another worker's events for them reach this engine

    async def answer(self, key: Any, compute: Callable[[], Any], user_id: str | None = None) -> Response:
        """The JSON answer for ``key``: from the cache (no thread, no re-validation), else
        ``compute()`` (an engine ``ResultList``, or a JSON-safe dict) on the event loop (cheap
        answers, see :data:`INLINE_BELOW_S`; on a one-core worker, answers from
        :data:`QUEUE_ABOVE_S` up to :data:`QUEUE_BELOW_S`, in arrival order) or in one of :func:`compute_threads` threads,
        rendered once and cached as bytes. ``user_id``: the
        answer is about that user, and only their writes make it stale. The ``X-Cache``
        header says which (``hit`` or ``miss``)."""
        import anyio

        if self.cache.shared:  # Redis: a round trip, off the event loop
            hit, stamp = await run_in_threadpool(shared_call, self.shared, lambda: self.cache.lookup(key, user_id))
        else:
            hit, stamp = self.cache.lookup(key, user_id)
        if hit is not None:
            self.metrics.cache.labels("hit").inc()
            return Response(hit, media_type="application/json", headers=_HIT)
        self.metrics.cache.labels("miss").inc()
        kind = str(key[0]) if isinstance(key, tuple) and key else ""
        cost = self._cost.get(kind)

        def timed() -> tuple[bytes, float]:
            t0 = time.thread_time()  # CPU of this thread: waits for the GIL do not count
            out = _json(compute())
            return out, time.thread_time() - t0

        inline = cost is not None and cost < (THREAD_ABOVE_S if self._inline.get(kind) else INLINE_BELOW_S)
        self._inline[kind] = inline
        # the first answer of a kind (its cost unknown: it may load a model) takes a thread
        queue = (not inline and cost is not None and QUEUE_ABOVE_S <= cost < QUEUE_BELOW_S
                 and self._threads().total_tokens == 1)
        self.metrics.computed.labels(kind, "loop" if inline else "queue" if queue else "thread").inc()
        if inline:
            body, spent = timed()
        elif queue:
            body, spent = await self.queued(timed)
        else:
            body, spent = await anyio.to_thread.run_sync(timed, limiter=self._threads())
        self.metrics.compute_cpu.labels(kind).observe(spent)
        # one slow computation (a first read of a user's history, a collection) counts at
        # most 4x the estimate: averaged in whole, it sent the next answers of its kind to
        # threads, where, on a busy worker, each waited for the loop to let go of the GIL
        self._cost[kind] = spent if cost is None else 0.8 * cost + 0.2 * min(spent, 4 * cost)
        if self.cache.shared:
            await run_in_threadpool(shared_call, self.shared, lambda: self.cache.store(key, stamp, body))
        else:
            self.cache.store(key, stamp, body)
        return Response(body, media_type="application/json", headers=_MISS)


_HIT, _MISS = {"X-Cache": "hit"}, {"X-Cache": "miss"}


def render_answer(out: Any) -> bytes:
    """An answer's JSON body, exactly as :meth:`ServeState.answer` serves it."""
    return _json(out)


def _json(out: Any) -> bytes:
    """The body FastAPI's JSONResponse would write, by orjson (json.dumps was 8% of a served
    recommendation's CPU). ``out``: a dict, or a ``ResultList``, rendered here without
    :func:`render`'s walk over every value: orjson writes numpy scalars itself and
    non-finite floats as null, as that walk would."""
    if isinstance(out, ResultList):
        out = render(out, clean=False)
    if orjson is not None:
        try:
            return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        except TypeError:  # a value only the walk makes JSON-safe
            pass
    return json.dumps(_clean(out), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, or an anonymous reader known by address."""

    role: str  # "anonymous" | "read" | "write"
    bucket: str  # rate-limit bucket and log label; never the secret
    key: ApiKey | None = None


async def get_state(request: Request) -> ServeState:
    return request.app.state.shopsense


async def get_engine(state: ServeState = Depends(get_state)) -> Engine:
    """The engine, first brought up to date with the writes other workers acknowledged
    (a thread only when the feed has news, or cannot be read locally)."""
    feed = state.feed
    if feed is not None and feed_behind(state):
        await run_in_threadpool(shared_call, state.shared, feed.sync)
    return state.engine


def feed_behind(state: ServeState) -> bool:
    """Whether the change feed may hold writes this worker's engine has not applied: read
    locally (SQLite's memory-mapped publish counter); ``True`` where that would take a
    round trip (Redis), so the caller syncs in a thread. Only with a feed."""
    shared = state.shared
    return shared is None or not shared.local_reads or shared_call(shared, state.feed.behind)  # type: ignore[union-attr]


async def get_settings(state: ServeState = Depends(get_state)) -> Settings:
    return state.settings


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="API key `ss_<id>_<secret>`; role read or write")


def principal_of(state: ServeState, token: str | None, host: str) -> Principal:
    """Who sends ``token`` (``None``: an anonymous reader at ``host``); a 401 for a bad key."""
    if token:
        try:
            key = state.keys.verify(token)
        except AuthError as exc:
            raise ApiError(401, "Unauthorized", str(exc), "X-API-Key") from None
        return Principal(key.role, f"key:{key.id}", key)
    return Principal("anonymous", f"ip:{host}")


def _principal(request: Request, state: ServeState, token: str | None) -> Principal:
    p = principal_of(state, token, request.client.host if request.client else "unknown")
    request.state.principal = p
    return p


async def limit_wait(state: ServeState, p: Principal) -> float:
    """Spend one of ``p``'s rate-limit tokens: this worker's lease, else the shared bucket (in
    a thread: it may wait on SQLite or Redis). 0 when allowed, else seconds until a token is free."""
    if state.limiter.take_local(p.bucket):
        return 0.0
    return await run_in_threadpool(shared_call, state.shared, lambda: state.limiter.hit(p.bucket))


async def _limit(state: ServeState, p: Principal) -> None:
    wait = await limit_wait(state, p)
    if wait > 0:
        state.metrics.rate_limited.inc()
        raise ApiError(429, "RateLimited",
                       f"Rate limit of {state.limiter.per_minute} requests per minute exceeded "
                       f"for {p.bucket}; retry in {wait:.1f} s.", "X-API-Key",
                       headers={"Retry-After": str(max(1, round(wait)))})


async def reader(request: Request, state: ServeState = Depends(get_state),
                 token: str | None = Security(_key_header)) -> Principal:
    """Reads are open unless the app was started with ``require_read_key``."""
    p = _principal(request, state, token)
    if state.require_read_key and p.role == "anonymous":
        raise ApiError(401, "Unauthorized", "This server requires an API key for reads: "
                       "send it in the X-API-Key header.", "X-API-Key")
    await _limit(state, p)
    return p


async def writer(request: Request, state: ServeState = Depends(get_state),
                 token: str | None = Security(_key_header)) -> Principal:
    """Writes and admin calls need a key with the ``write`` role."""
    p = _principal(request, state, token)
    if p.role == "anonymous":
        raise ApiError(401, "Unauthorized", "This call needs an API key with the 'write' role "
                       "in the X-API-Key header.", "X-API-Key")
    if p.role != "write":
        raise ApiError(403, "Forbidden", f"The key {p.bucket} has role {p.role!r}; this call "
                       "needs 'write'.", "X-API-Key")
    await _limit(state, p)
    return p
