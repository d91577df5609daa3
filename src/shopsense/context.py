"""The narrow port between the engine and its services.

Services (search, recommend, bundles) and the text helpers never import the
engine: they receive a :class:`ShopContext`, which the engine implements, and
the engine talks back to them only through the :class:`Service` protocol. This
keeps every arrow pointing down (``tests/test_layers.py`` checks it) and lets a
test hand a service a small fake context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from shopsense.catalog import Catalog, Event
    from shopsense.config import Settings
    from shopsense.home import Home
    from shopsense.store import Store
    from shopsense.text import TextEncoder

__all__ = ["Service", "ShopContext"]


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
