"""A cache of read responses that no write, through any worker, can outlive, and that a
write only empties where it has to.

Every entry is stored with the *stamp* it was computed at and only served while the
stamp is unchanged. The parts of a stamp come from the shared change feed
(:mod:`shopsense.serve._shared`), whose sequence numbers every worker sees alike:

- **the user's version**, for an answer about one user (recommendations, a search
  personalised for ``user_id``): the number of the last change that named the user
  (their events, their deletion). Another user's event leaves the entry alone: a
  shopper's clicks do not recompute everybody's lists, only their own;
- **the catalogue's version**: the number of the last product change; every entry
  depends on it;
- a local generation, bumped by :meth:`ResponseCache.invalidate` (merchandising
  rules saved through the API), and ``version()``: data changed outside the API (the
  rules file's time, and the index and model versions being served).

A user the worker has seen no change of since it started has the version of its
starting position (``baseline``): never lower than a change made before the worker
existed, so an entry computed before that change (shared through Redis) can never match.

The stamp is taken *before* the answer is computed (:meth:`lookup`, then :meth:`store`
with that stamp): a write that lands during the computation leaves the entry stale at
once, rather than filed under the new version.

Where the entries live: with Redis they are shared by every worker (a TTL'd key per
request and stamp, without the local generation); without Redis each worker keeps its
own LRU, which costs a computation per worker per entry but is never stale, because the
versions are read from the shared feed before each request.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from shopsense.serve._shared import SharedState

__all__ = ["ResponseCache"]

_RAW = "__raw_json__"  # a pre-rendered JSON body kept in the shared cache as a string


#: an entry lives a random share of the TTL, from this fraction of it to all of it: with one
#: fixed TTL, the entries a worker fills together (just started, or just emptied by an
#: invalidation) all expire together a TTL later, and again after that, each time a burst of
#: recomputation. (Not what made bench/serve.py's cache-on search uneven between 10-s windows
#: on 1 Dec: at those rates the 4,096-entry LRU turns over in ~20 s, before any TTL.)
TTL_SPREAD = 0.5


class ResponseCache:
    """Rendered read answers, each served only while the stamp it was computed at (the
    catalogue's, its user's and the served versions, from the change feed) is current; kept
    in Redis when the shared state is Redis, else in this worker's LRU of ``maxsize``
    entries. Each entry lives a random 50-100% of ``ttl_s`` (0 turns the cache off)."""

    def __init__(self, maxsize: int = 4096, ttl_s: float = 60.0, version: Callable[[], Any] | None = None,
                 shared: SharedState | None = None, pseudo: Callable[[str], str] | None = None) -> None:
        self.maxsize = maxsize
        self.ttl_s = ttl_s
        self.generation = 0
        self._version = version or (lambda: None)
        self._pseudo = pseudo or (lambda u: u)
        self._shared = shared if shared is not None and shared.shares_cache else None
        self._data: OrderedDict[Any, tuple[Any, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._baseline = 0  # the version of users (and of the catalogue) with no change seen
        self._products = 0
        self._users: dict[str, int] = {}  # pseudonym -> seq of the last change naming them

    @property
    def shared(self) -> bool:
        """Whether the entries are shared by every worker (Redis) or kept per worker."""
        return self._shared is not None

    # -- versions, from the change feed ----------------------------------------------------
    def reset(self, position: int) -> None:
        """Start (or restart after a gap in the feed) at ``position``: every user and the
        catalogue are as new as that."""
        with self._lock:
            self._baseline = self._products = position
            self._users.clear()
            self._data.clear()

    def users_changed(self, pseudonyms: Iterable[str], seq: int) -> None:
        """Change ``seq`` named these users (pseudonyms): their entries are stale."""
        with self._lock:
            for p in pseudonyms:
                if self._users.get(p, 0) < seq:
                    self._users[p] = seq

    def products_changed(self, seq: int) -> None:
        with self._lock:
            self._products = max(self._products, seq)

    def invalidate(self) -> None:
        """Drop this worker's entries now (a write made here that other workers learn of
        from the files it changed, or a write the feed could not carry)."""
        with self._lock:
            self.generation += 1
            self._data.clear()

    def stamp(self, user_id: str | None = None) -> tuple[Any, ...]:
        """The version an answer computed now is valid for (``user_id``: about that user)."""
        user = None
        if user_id is not None:
            p = self._pseudo(user_id)
            user = max(self._users.get(p, 0), self._baseline)
        return (self._products, user, self._version(), self.generation)

    # -- entries ---------------------------------------------------------------------------
    def lookup(self, key: Any, user_id: str | None = None) -> tuple[Any | None, tuple[Any, ...]]:
        """``(value or None, stamp)``: store a value computed after this call under ``stamp``."""
        stamp = self.stamp(user_id)
        if self.ttl_s <= 0:  # the cache is off (Settings.response_cache_ttl_s = 0)
            return None, stamp
        if self._shared is not None:
            return _unwrap(self._shared.cache_get(self._shared_key(key, stamp))), stamp
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None, stamp
            at_stamp, until, value = hit
            if at_stamp != stamp or time.monotonic() > until:
                del self._data[key]
                return None, stamp
            self._data.move_to_end(key)
            return value, stamp

    def store(self, key: Any, stamp: tuple[Any, ...], value: Any) -> None:
        if self.ttl_s <= 0:
            return
        if self._shared is not None:
            self._shared.cache_put(self._shared_key(key, stamp), _wrap(value), self._lifetime())
            return
        with self._lock:
            self._data[key] = (stamp, time.monotonic() + self._lifetime(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def _lifetime(self) -> float:
        """Seconds a new entry lives: a uniform share of the TTL (see :data:`TTL_SPREAD`)."""
        return self.ttl_s * (1.0 - TTL_SPREAD * random.random())  # spreading load, not a secret

    def get(self, key: Any) -> Any | None:
        """An entry that depends on no user (see :meth:`lookup`)."""
        return self.lookup(key)[0]

    def put(self, key: Any, value: Any) -> None:
        self.store(key, self.stamp(), value)

    @staticmethod
    def _shared_key(key: Any, stamp: tuple[Any, ...]) -> str:
        # the local generation is left out: every worker's writes reach the others by the feed
        return json.dumps([repr(key), stamp[0], stamp[1], repr(stamp[2])])


def _wrap(value: Any) -> Any:
    return {_RAW: value.decode()} if isinstance(value, bytes) else value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and _RAW in value:
        return value[_RAW].encode()
    return value
