"""State shared by every worker that serves one home: the interface and its factory.

``shopsense serve --workers N`` runs N processes. What must hold across them lives
behind :class:`SharedState`, with one file per back-end:

- :class:`~shopsense.serve._shared_sqlite.SQLiteSharedState` (the default): a small
  SQLite file, ``<home>/serve_state.sqlite3`` in WAL mode, shared by the workers of
  one machine.
- :class:`~shopsense.serve._shared_redis.RedisSharedState` (``Settings.redis_url``):
  the same in Redis, so workers on several machines agree.

Three things are shared:

1. **Rate limits**: one token bucket per client (``per_minute`` tokens, refilled
   continuously, bursts up to ``per_minute``), updated atomically, so N workers
   together allow what one worker alone allowed. A worker takes tokens a tenth of a
   second's worth at a time (:class:`~shopsense.serve._limits.RateLimiter`), so a
   busy client costs one shared update per lease instead of one per request.
2. **The change feed**: every write a worker makes through the API (events of some
   users, product changes, a user's deletion) is appended with a sequence number
   after the store has committed it. Before each request a worker reads what it has
   not seen yet and tells its engine (per-user histories, stale counts, catalogue),
   so no worker serves data older than a write another worker acknowledged. The
   newest sequence number is also the response cache's invalidation version.
3. **The response cache** (Redis only): entries with a TTL, keyed by the request and
   the version they were computed at. Without Redis each worker keeps its own LRU
   cache, and because the version is the shared feed position, an entry is never
   served after a write through any worker (see :mod:`shopsense.serve._cache`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = ["CHANGE_KINDS", "Change", "FeedGap", "SharedQueryVectors", "SharedState"]

#: what a change in the feed can be
CHANGE_KINDS = ("events", "products", "forget")

#: changes kept in the feed; a worker further behind than this resynchronises in full
FEED_KEEP = 100_000


@dataclass(frozen=True)
class Change:
    """One acknowledged write. ``users`` holds ``(user_id, event_type)`` pairs for
    ``events`` and ``(user_id, "")`` for ``forget``; it is empty for ``products``."""

    seq: int
    kind: str
    origin: str
    users: tuple[tuple[str, str], ...] = ()

    def payload(self) -> str:
        return json.dumps([list(p) for p in self.users], separators=(",", ":"))

    @staticmethod
    def users_of(payload: str | bytes) -> tuple[tuple[str, str], ...]:
        return tuple((str(u), str(t)) for u, t in json.loads(payload))


class FeedGap(Exception):
    """The feed no longer holds every change after the reader's position (trimmed,
    or the shared store was emptied): the reader must resynchronise in full."""

    def __init__(self, head: int) -> None:
        super().__init__(f"change feed gap; head is {head}")
        self.head = head


class SharedState(ABC):
    """Rate limits, the change feed and (optionally) a response cache shared by workers."""

    #: the back-end's name, reported by ``/readyz``
    name: str = ""
    #: whether :meth:`cache_get` / :meth:`cache_put` hold entries (else each worker caches)
    shares_cache: bool = False
    #: what the back-end raises when it cannot be reached or stays locked (a 503, retried)
    errors: tuple[type[BaseException], ...] = ()
    #: whether :meth:`head` is a local read that never waits for a writer (a file on this
    #: machine), so a request may check the feed without leaving the event loop
    local_reads: bool = False

    def hit(self, bucket: str, per_minute: int) -> float:
        """Take one token from ``bucket``: 0 when allowed, else seconds until one is free."""
        return self.take(bucket, per_minute, 1)[1]

    @abstractmethod
    def take(self, bucket: str, per_minute: int, n: int) -> tuple[int, float]:
        """Take up to ``n`` tokens from ``bucket`` at once (as many whole tokens as it holds):
        ``(taken, 0.0)`` when at least one was free, else ``(0, seconds until one is)``."""

    @abstractmethod
    def publish(self, kind: str, origin: str, users: tuple[tuple[str, str], ...] = ()) -> int:
        """Append a change after the store committed it; returns its sequence number."""

    @abstractmethod
    def head(self) -> int:
        """The sequence number of the newest change (0 when none)."""

    def bell(self) -> int | None:
        """A number that changes whenever a change is published, readable without a query
        (None: the back-end has none, ask :meth:`head`). A hint only: a reader that sees it
        unchanged since its last up-to-date :meth:`head` knows nothing was published since."""
        return None

    @abstractmethod
    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes after ``seq``, oldest first, at most ``limit``; :class:`FeedGap` when
        some of them are no longer held."""

    def cache_get(self, key: str) -> Any | None:
        return None

    def cache_put(self, key: str, value: Any, ttl_s: float) -> None:
        return None

    def vector_get(self, key: str) -> bytes | None:
        """A query vector another worker stored under ``key`` (a hash, never the query)."""
        return None

    def vector_put(self, key: str, value: bytes) -> None:
        return None

    def ping(self) -> None:
        """Raise when the shared state cannot be reached (readiness)."""
        self.head()

    def housekeeping(self) -> None:
        """Drop expired buckets and old changes (called now and then by each worker)."""

    def close(self) -> None:
        """Release connections."""


class SharedQueryVectors:
    """The encoder's view of the shared query vectors (``TextEncoder.shared_queries``): a
    query is encoded once per machine instead of once per worker. A cache that cannot be
    reached is a miss, never a failed search."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    def get(self, key: str) -> bytes | None:
        try:
            return self.shared.vector_get(key)
        except self.shared.errors:
            return None

    def put(self, key: str, value: bytes) -> None:
        try:
            self.shared.vector_put(key, value)
        except self.shared.errors:
            pass
