"""Array shapes of the datasets that benchmarks want as arrays, not objects (judgments:
:class:`~shopsense.datasets.Judgments`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Baskets", "Sequences"]


@dataclass(frozen=True)
class _Ragged:
    """``keys[i]`` owns ``items[indptr[i]:indptr[i+1]]`` (CSR layout, no copies per row)."""

    keys: np.ndarray
    indptr: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.indptr[i] : self.indptr[i + 1]]

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for i in range(len(self.keys)):
            yield self.keys[i], self[i]

    @property
    def n_interactions(self) -> int:
        return int(self.indptr[-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def as_lists(self) -> list[list[str]]:
        return [self[i].tolist() for i in range(len(self.keys))]

    def item_ids(self) -> list[str]:
        """Distinct items in first-seen order."""
        return list(dict.fromkeys(self.items.tolist()))

    @classmethod
    def from_lists(cls, keys: Sequence[str], rows: Sequence[Sequence[str]]):  # type: ignore[no-untyped-def]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        items = np.empty(int(indptr[-1]), dtype=object)
        items[:] = [x for r in rows for x in r]
        return cls(np.asarray(list(keys), dtype=object), indptr, items)


@dataclass(frozen=True)
class Sequences(_Ragged):
    """Per-user item sequences in time order: ``keys`` are user ids."""


@dataclass(frozen=True)
class Baskets(_Ragged):
    """Market baskets: ``keys`` are basket (invoice) ids, items unordered within a basket."""
