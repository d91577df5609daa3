"""The narrow port between the engine and its services.

Services (search, recommend, bundles) and the text helpers never import the
engine: they receive a :class:`ShopContext`, which the engine implements, and
the engine talks back to them only through the :class:`Service` protocol. This
keeps every arrow pointing down (``tests/test_layers.py`` checks it) and lets a
test hand a service a small fake context.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from shopsense.catalog import Catalog, Event
    from shopsense.config import Settings
    from shopsense.home import Home
    from shopsense.store import Store
    from shopsense.text import TextEncoder

__all__ = ["Service", "ShopContext", "UserCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@runtime_checkable
class ShopContext(Protocol):
    """What a service may know of the shop: settings, paths, store, catalogue, encoder."""

    settings: Settings
    paths: Home
    store: Store

    def catalog(self) -> Catalog:
        """The current product snapshot with its id <-> dense-index map."""
        ...

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder named in the settings (loaded on first use)."""
        ...

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, dim) unit text vectors aligned with :meth:`catalog`, cached under
        ``paths.embeddings``; ``None`` when no encoder is installed."""
        ...


@runtime_checkable
class Service(Protocol):
    """What the engine tells a loaded service about writes to the store."""

    def on_events(self, events: Sequence[Event]) -> None:
        """Events were stored (drop cached histories, mark counts stale)."""
        ...

    def on_products_changed(self) -> None:
        """Products were added, changed or deleted."""
        ...

    def forget_user(self, user_id: str) -> Any:
        """Drop everything held in memory about ``user_id``; returns what was dropped."""
        ...


class UserCache(Generic[K, V]):
    """What a service holds in memory per user (histories, profiles), least recently
    used first out once it holds ``size`` users: a shop's traffic meets every user in
    time, and an unbounded dict grew a worker by each one. Dropping an entry is always
    safe: it is read again from the store on the user's next request. ``on_evict(key,
    value)`` is called for an entry pushed out by a new one (not for :meth:`pop`). The
    bundles' memo of fitted arrays (``bundles._neighbors.Memo``) is the same map.

    Thread-safe (a worker answers from several threads); written by hand because it is
    twenty lines and the one library that does it (cachetools) is not thread-safe either.
    """

    def __init__(self, size: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        if size < 1:
            raise ValueError(f"UserCache size must be >= 1; got {size}")
        self.size = size
        self._on_evict = on_evict
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: Any = None) -> V | Any:
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: K, value: V) -> None:
        evicted = []
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                evicted.append(self._data.popitem(last=False))
        if self._on_evict is not None:
            for k, v in evicted:
                self._on_evict(k, v)

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def pop(self, key: K, default: Any = None) -> V | Any:
        with self._lock:
            return self._data.pop(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_MISSING: Any = object()
