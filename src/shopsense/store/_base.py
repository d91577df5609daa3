"""The storage interface. SQLite is the embedded default; a PostgreSQL back-end
implements the same class without touching callers."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from shopsense.catalog import Event, Product


def event_key(e: Event) -> str:
    """The identity of an event for de-duplication: a 128-bit hash (hex) of every field
    but the price. Every back-end stores it under a unique constraint, so re-ingesting a
    file skips the events already stored, whichever back-end holds them."""
    raw = "\x1f".join(
        [e.user_id, e.item_id or "", e.type.value, f"{e.timestamp.timestamp():.6f}",
         e.session_id or "", e.query or "", str(e.quantity)]
    )
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class EventArrays:
    """Events as column arrays, ordered by time: what models are handed."""

    user_id: np.ndarray  # object (str)
    item_id: np.ndarray  # object (str | None)
    type: np.ndarray  # object (str)
    timestamp: np.ndarray  # float64 seconds since epoch
    session_id: np.ndarray  # object (str | None)
    query: np.ndarray  # object (str | None)
    quantity: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user_id)

    def mask(self, keep: np.ndarray) -> EventArrays:
        return EventArrays(**{k: getattr(self, k)[keep] for k in self.__dataclass_fields__})


class Store(ABC):
    """Durable store of products, events and small metadata."""

    @abstractmethod
    def upsert_products(self, products: Iterable[Product]) -> int:
        """Insert or replace products by id in one transaction; returns the count."""

    @abstractmethod
    def add_events(self, events: Iterable[Event]) -> int:
        """Append events in one transaction; an identical event already stored is
        skipped (idempotent re-ingest). Returns the number newly stored."""

    @abstractmethod
    def get_product(self, product_id: str) -> Product | None: ...

    @abstractmethod
    def get_products(self, product_ids: list[str]) -> list[Product | None]:
        """Products in the order asked for, ``None`` for unknown ids."""

    @abstractmethod
    def iter_products(self, batch_size: int = 1000) -> Iterator[list[Product]]:
        """All products in insertion order, in batches."""

    @abstractmethod
    def product_ids(self) -> list[str]:
        """All product ids in insertion order (the dense index order)."""

    @abstractmethod
    def count_products(self) -> int: ...

    @abstractmethod
    def count_events(self, user_id: str | None = None) -> int: ...

    @abstractmethod
    def events(
        self, user_id: str | None = None, session_id: str | None = None, since: float | None = None
    ) -> EventArrays:
        """Events (optionally of one user or session, or after ``since``) in time order."""

    @abstractmethod
    def event_type_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def delete_user(self, user_id: str) -> int:
        """Remove every event of a user; returns the number removed."""

    @abstractmethod
    def delete_products(self, product_ids: list[str]) -> int: ...

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...
