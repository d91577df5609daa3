"""The result types every surface returns.

Models exchange :class:`Ranked` (dense indices and float32 scores, shape
(n_queries, k)); the engine turns them into :class:`Hit` lists that carry the
external id, the score of every source that produced the item, and a reason a
shopper can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # results are a core type: they must not import a stage at run time
    from shopsense.catalog import Product


@dataclass(frozen=True)
class Ranked:
    """Top-k dense indices and scores for a batch of queries; -1 pads short rows."""

    indices: np.ndarray  # int64 (n_queries, k)
    scores: np.ndarray  # float32 (n_queries, k)

    def __post_init__(self) -> None:
        if self.indices.shape != self.scores.shape or self.indices.ndim != 2:
            raise ValueError(
                f"Ranked needs indices and scores of one 2-D shape; got {self.indices.shape} "
                f"and {self.scores.shape}."
            )


@dataclass(frozen=True)
class Hit:
    """One item in a result list.

    ``source`` names what produced the item (e.g. ``"bm25"``, ``"dense"``,
    ``"copurchase"``, ``"content"``, ``"popular"``); ``sources`` keeps every
    source's own score so fusion and re-ranking stay explainable. ``reason`` is
    derived from the source and features, never invented.
    """

    id: str
    score: float
    source: str
    sources: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    product: Product | None = None

    def with_(self, **changes: Any) -> Hit:
        """A copy with ``changes``. Not :func:`dataclasses.replace`, which re-runs ``__init__``
        (defaults, a frozen ``__setattr__`` per field): the finishing stage copies every hit
        two or three times per list, and replace was 9% of a served recommendation's CPU."""
        unknown = changes.keys() - _HIT_FIELDS
        if unknown:
            raise TypeError(f"Hit has no field {min(unknown)!r}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def as_dict(self, include_product: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "score": float(self.score), "source": self.source,
            "sources": {k: float(v) for k, v in self.sources.items()}, "reason": self.reason,
            "evidence": self.evidence,
        }
        if include_product and self.product is not None:
            out["product"] = self.product.model_dump(mode="json")
        return out


_HIT_FIELDS = frozenset(f.name for f in fields(Hit))


@dataclass(frozen=True)
class ResultList:
    """Hits plus what the engine understood (parsed query, facets, re-ranking report)."""

    hits: list[Hit]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hits)

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def as_dict(self, include_product: bool = True) -> dict[str, Any]:
        return {"hits": [h.as_dict(include_product) for h in self.hits], **self.info}
