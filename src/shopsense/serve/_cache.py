"""A small LRU cache of read responses, emptied by any write.

Writes (products, events, deletions) bump a generation number; entries from an
older generation are never served, so a cached list can never outlive the data
it was computed from (e.g. a deleted user's recommendations). ``version`` names
data changed outside the API (the rules file, edited by ``shopsense rules``): an
entry stored under another version is not served either.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["ResponseCache"]


class ResponseCache:
    def __init__(self, maxsize: int = 2048, ttl_s: float = 60.0, version: Callable[[], Any] | None = None) -> None:
        self.maxsize = maxsize
        self.ttl_s = ttl_s
        self.generation = 0
        self._version = version or (lambda: None)
        self._data: OrderedDict[Any, tuple[tuple[int, Any], float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            gen, at, value = hit
            if gen != (self.generation, self._version()) or time.monotonic() - at > self.ttl_s:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = ((self.generation, self._version()), time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._data.clear()
