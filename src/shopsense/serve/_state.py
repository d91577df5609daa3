"""What one running app holds, and the dependencies routers use to reach it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from shopsense.config import Settings
from shopsense.errors import AuthError
from shopsense.serve._auth import ApiKey, KeyStore
from shopsense.serve._cache import ResponseCache
from shopsense.serve._errors import ApiError
from shopsense.serve._limits import RateLimiter
from shopsense.serve._metrics import Metrics
from shopsense.serve._privacy import Pseudonymizer
from shopsense.serve._shared import SharedState
from shopsense.serve._sync import ChangeFeed

if TYPE_CHECKING:
    from shopsense.engine import Engine

__all__ = ["Principal", "ServeState", "get_engine", "get_settings", "get_state", "reader", "writer"]

log = logging.getLogger(__name__)
T = TypeVar("T")


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

    # -- after a write: drop this worker's cached responses, then tell the others -------
    def events_stored(self, events: Sequence[Any]) -> None:
        self.cache.invalidate()
        if self.feed is not None:
            self._tell(lambda: self.feed.events_stored(events))  # type: ignore[union-attr]

    def products_changed(self) -> None:
        self.cache.invalidate()
        if self.feed is not None:
            self._tell(self.feed.products_changed)

    def user_forgotten(self, user_id: str) -> None:
        self.cache.invalidate()
        if self.feed is not None:
            self._tell(lambda: self.feed.user_forgotten(user_id))  # type: ignore[union-attr]

    def _tell(self, publish: Callable[[], int]) -> None:
        errors: tuple[type[BaseException], ...] = self.shared.errors if self.shared is not None else ()
        try:
            publish()
        except errors as exc:
            log.error("write stored but not published to the other workers: %s", exc)
            raise ApiError(503, "SharedStateUnavailable", "The write was stored, but the other "
                           "workers could not be told; send it again (identical events are "
                           "not stored twice).", headers={"Retry-After": "1"}) from exc


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, or an anonymous reader known by address."""

    role: str  # "anonymous" | "read" | "write"
    bucket: str  # rate-limit bucket and log label; never the secret
    key: ApiKey | None = None


def get_state(request: Request) -> ServeState:
    return request.app.state.shopsense


def get_engine(state: ServeState = Depends(get_state)) -> Engine:
    """The engine, first brought up to date with the writes other workers acknowledged."""
    if state.feed is not None:
        shared_call(state.shared, state.feed.sync)
    return state.engine


def get_settings(state: ServeState = Depends(get_state)) -> Settings:
    return state.settings


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="API key `ss_<id>_<secret>`; role read or write")


def _principal(request: Request, state: ServeState, token: str | None) -> Principal:
    if token:
        try:
            key = state.keys.verify(token)
        except AuthError as exc:
            raise ApiError(401, "Unauthorized", str(exc), "X-API-Key") from None
        p = Principal(key.role, f"key:{key.id}", key)
    else:
        host = request.client.host if request.client else "unknown"
        p = Principal("anonymous", f"ip:{host}")
    request.state.principal = p
    return p


def _limit(state: ServeState, p: Principal) -> None:
    wait = shared_call(state.shared, lambda: state.limiter.hit(p.bucket))
    if wait > 0:
        state.metrics.rate_limited.inc()
        raise ApiError(429, "RateLimited",
                       f"Rate limit of {state.limiter.per_minute} requests per minute exceeded "
                       f"for {p.bucket}; retry in {wait:.1f} s.", "X-API-Key",
                       headers={"Retry-After": str(max(1, round(wait)))})


def reader(request: Request, state: ServeState = Depends(get_state),
           token: str | None = Security(_key_header)) -> Principal:
    """Reads are open unless the app was started with ``require_read_key``."""
    p = _principal(request, state, token)
    if state.require_read_key and p.role == "anonymous":
        raise ApiError(401, "Unauthorized", "This server requires an API key for reads: "
                       "send it in the X-API-Key header.", "X-API-Key")
    _limit(state, p)
    return p


def writer(request: Request, state: ServeState = Depends(get_state),
           token: str | None = Security(_key_header)) -> Principal:
    """Writes and admin calls need a key with the ``write`` role."""
    p = _principal(request, state, token)
    if p.role == "anonymous":
        raise ApiError(401, "Unauthorized", "This call needs an API key with the 'write' role "
                       "in the X-API-Key header.", "X-API-Key")
    if p.role != "write":
        raise ApiError(403, "Forbidden", f"The key {p.bucket} has role {p.role!r}; this call "
                       "needs 'write'.", "X-API-Key")
    _limit(state, p)
    return p
