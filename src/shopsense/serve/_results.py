"""Turn an engine ``ResultList`` into the JSON every list endpoint returns."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["HitOut", "ResultsOut", "render"]


class HitOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    score: float
    source: str
    sources: dict[str, float] = {}
    reason: str = ""
    evidence: dict[str, Any] = {}
    product: dict[str, Any] | None = None


class ResultsOut(BaseModel):
    """Hits plus what the engine understood (parsed query, facets, re-ranking report)."""

    model_config = ConfigDict(extra="allow")

    hits: list[HitOut]


def _clean(x: Any) -> Any:
    """JSON cannot carry NaN/inf or numpy scalars; models sometimes produce them."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (TypeError, ValueError):
            return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def render(result: Any, *_legacy: Any, clean: bool = True) -> dict[str, Any]:
    """Serialise a finished ``ResultList`` (the engine's finishing stage has filled the
    products and reasons already, as for the CLI and Python callers). ``clean=False``
    leaves numpy scalars and non-finite floats in place, for a writer that handles them
    (the served answers' orjson: the walk over every value was 9% of a recommendation)."""
    out = {"hits": [h.as_dict(include_product=True) for h in result.hits], **result.info}
    # scores without a finite value stay in the list, as null -> 0 for the schema
    for h in out["hits"]:
        if not math.isfinite(h["score"]):
            h["score"] = 0.0
    return _clean(out) if clean else out
