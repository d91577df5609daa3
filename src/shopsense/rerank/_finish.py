"""The one finishing stage every result list passes through before it reaches a shopper.

Services return ranked candidates with their evidence; this stage, run by the
engine on every surface, fills the products, applies the shop's rules and the
surface's diversity, writes the reasons and, when configured, has them reworded.
Doing it once here is what makes the CLI, the Python API and the HTTP API give
the same list with the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from shopsense.rerank._explain import Rephraser, explain, rephrase
from shopsense.rerank._pipeline import Reranker
from shopsense.results import Hit, ResultList

__all__ = ["finish", "reorders"]


def reorders(reranker: Reranker, context: Mapping[str, Any]) -> bool:
    """Whether ``reranker`` may change the list of ``context["surface"]``: a diversity
    weight for that surface, hidden out-of-stock items, or a rule active there."""
    lam = float(reranker.lambdas.get(context.get("surface"), 0.0))
    rules = reranker.rules
    return lam > 0 or rules.hide_out_of_stock or any(r.active(context) for r in rules.rules)


def _filled(hits: list[Hit], catalog: Any) -> list[Hit]:
    """Hits with their product; hits of products no longer in the catalogue are dropped."""
    out = []
    for h in hits:
        if h.product is not None:
            out.append(h)
        elif (row := catalog.index.get(h.id)) is not None:
            out.append(h.with_(product=catalog.products[row]))
    return out


def finish(
    result: ResultList, catalog: Any, *, k: int, context: Mapping[str, Any],
    reranker: Reranker | None = None, filters: Mapping[str, Any] | None = None,
    vectors: Callable[[], np.ndarray | None] | None = None, rephraser: Rephraser | None = None,
) -> ResultList:
    """Fill, re-rank, explain and rephrase ``result``; returns a new list of at most ``k``.

    ``info["rerank"]`` reports what moved, what was removed and why, when anything could.

    Parameters
    ----------
    context
        At least ``{"surface": ...}``; rules match on it (and on ``query``).
    reranker
        Rules and per-surface diversity; ``None`` keeps the order.
    filters
        The call's own filters, so a pinned product they rule out is not inserted.
    vectors
        Called only when diversity is on; item vectors aligned with ``catalog``.
    rephraser
        Optional back-end that rewords the reasons (failures keep them).
    """
    hits = _filled(list(result.hits), catalog)
    info = dict(result.info)
    if reranker is not None and reorders(reranker, context):
        lam = float(reranker.lambdas.get(context.get("surface"), 0.0))
        emb = vectors() if (vectors is not None and lam > 0) else None
        hits, report = reranker.rerank(hits, catalog, embeddings=emb, k=k, context=context, diversity=lam,
                                       filters=filters)
        info["rerank"] = report.as_dict()
    hits = hits[:k]
    need = [i for i, h in enumerate(hits) if not h.reason]
    if need:
        for i, h in zip(need, explain([hits[i] for i in need], catalog, context)):
            hits[i] = h
    if rephraser is not None:  # Settings.llm_url: off by default; failures keep the reasons
        hits = rephrase(hits, rephraser, context)
    return type(result)(hits, info)
