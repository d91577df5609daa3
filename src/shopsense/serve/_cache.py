"""A cache of read responses that no write, through any worker, can outlive.

Every entry is stored with the *version* it was computed at, and only served while
the version is unchanged. The version has three parts:

- the position of the shared change feed (:mod:`shopsense.serve._shared`): every
  write through the API, by any worker (products, events, deletions), moves it, so a
  cached list can never outlive the data it was computed from (e.g. a deleted user's
  recommendations, or a list computed before another worker stored that user's events);
- a local generation, bumped by this worker's own writes at once;
- ``version()``, data changed outside the API (the rules file, edited by
  ``shopsense rules``).

Where the entries live: with Redis they are shared by every worker (a TTL'd key per
request and version); without Redis each worker keeps its own LRU of entries, which
costs a computation per worker per entry but is never stale, because the version is
read from the shared feed before each request.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from shopsense.serve._shared import SharedState

__all__ = ["ResponseCache"]


class ResponseCache:
    def __init__(self, maxsize: int = 2048, ttl_s: float = 60.0, version: Callable[[], Any] | None = None,
                 feed_position: Callable[[], int] | None = None, shared: SharedState | None = None) -> None:
        self.maxsize = maxsize
        self.ttl_s = ttl_s
        self.generation = 0
        self._version = version or (lambda: None)
        self._position = feed_position or (lambda: 0)
        self._shared = shared if shared is not None and shared.shares_cache else None
        self._data: OrderedDict[Any, tuple[Any, float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether the entries are shared by every worker (Redis) or kept per worker."""
        return self._shared is not None

    def _stamp(self) -> tuple[Any, ...]:
        return (self._position(), self.generation, self._version())

    def _shared_key(self, key: Any) -> str:
        # the local generation is left out: the feed position already covers every write
        stamp = self._stamp()
        return json.dumps([repr(key), stamp[0], repr(stamp[2])])

    def get(self, key: Any) -> Any | None:
        if self._shared is not None:
            return self._shared.cache_get(self._shared_key(key))
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            stamp, at, value = hit
            if stamp != self._stamp() or time.monotonic() - at > self.ttl_s:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        if self._shared is not None:
            self._shared.cache_put(self._shared_key(key), value, self.ttl_s)
            return
        with self._lock:
            self._data[key] = (self._stamp(), time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def invalidate(self) -> None:
        """This worker wrote: drop its entries now (the feed tells the other workers)."""
        with self._lock:
            self.generation += 1
            self._data.clear()
