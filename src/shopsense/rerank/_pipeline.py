"""The one re-ranking entry point the services call: rules, diversity, category
caps, exposure fairness, pins and explanations, in that order."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shopsense.errors import check_param
from shopsense.rerank._diversity import category_cap as _category_cap
from shopsense.rerank._diversity import dpp_rerank, item_features, maxsum_rerank, mmr_rerank
from shopsense.rerank._explain import explain
from shopsense.rerank._fairness import ExposureBounds, exposure_fair_rerank
from shopsense.rerank._report import RerankReport, diff_positions
from shopsense.rerank._rules import Rule, RuleSet, active_rules, load_rules
from shopsense.results import Hit

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LAMBDA", "DEFAULT_METHOD", "Reranker", "apply"]

#: diversity method and weight recommended by bench/rerank.py: MaxSum lies above MMR and DPP
#: on every dataset's trade-off curve, and 0.4 is the largest grid value whose VALIDATION
#: NDCG@10 loss is <= 4% on Amazon Beauty and Office (pool 3k, picked set shown best-first)
DEFAULT_METHOD = "maxsum"
DEFAULT_LAMBDA = 0.4


_METHODS = {"mmr": mmr_rerank, "maxsum": maxsum_rerank, "dpp": dpp_rerank}


def _group_of(catalog: Any, idx: np.ndarray, by: str) -> np.ndarray:
    """Group label per candidate: 'brand', or any product attribute (e.g. 'seller')."""
    out = np.full(len(idx), "", dtype=object)
    ok = idx >= 0
    if by == "brand":
        out[ok] = catalog.brand[idx[ok]]
    else:
        out[ok] = [catalog.products[int(i)].attributes.get(by, "") for i in idx[ok]]
    return out


def _relevance(scores: np.ndarray) -> np.ndarray:
    """Scores when they agree with the given order, else the order itself.

    Upstream stages (a learned ranker, a pin) may hand over a list whose order is
    the truth and whose scores are not monotone; then rank is the relevance.
    """
    if len(scores) < 2 or np.all(np.diff(scores) <= 1e-12):
        return scores
    return -np.arange(len(scores), dtype=np.float64)


def apply(
    hits: Sequence[Hit], catalog: Any, *, embeddings: np.ndarray | None = None,
    similarity: np.ndarray | None = None, diversity: float = 0.0,
    method: Literal["mmr", "maxsum", "dpp"] = DEFAULT_METHOD, category_weight: float = 0.5,
    category_cap: int | None = None, rules: RuleSet | Sequence[Rule] | None = None,
    fairness: ExposureBounds | None = None, fairness_by: str = "brand", k: int = 10,
    pool: int | None = None, sort_selected: bool = True, context: Mapping[str, Any] | None = None,
    explain_reasons: bool = True, filters: Mapping[str, Any] | None = None,
) -> tuple[list[Hit], RerankReport]:
    """Re-rank ``hits`` (best first) and say what changed; inputs are never modified.

    Parameters
    ----------
    embeddings: (n_items, d) item vectors aligned to the catalogue's dense indices;
        with the leaf category they define the similarity used for diversity.
    similarity: (n_hits, n_hits) similarity (or (n_hits, d) features) of the hits,
        overriding ``embeddings`` (e.g. co-occurrence similarity when items have no text).
    diversity: the lambda knob in [0, 1]: 0 keeps relevance order, 1 only diversity.
    method: 'mmr' (avoid near-duplicates), 'maxsum' (raise mean pairwise diversity; more ILD
        per unit of NDCG in bench/rerank.py) or 'dpp' (greedy DPP MAP).
    category_cap: at most this many items of one leaf category in the top ``k``.
    fairness: exposure-share bounds per group (``fairness_by``: 'brand' or an attribute).
    k: the window (list size shown) that diversity, caps and fairness act on.
    pool: diversity picks the top ``k`` from the best ``pool`` candidates only (default
        ``3 * k``): swapping in items from deep in the list costs accuracy for little
        extra variety (bench/rerank.py measures both).
    sort_selected: show the k items diversity picked in relevance order (same set, so
        the same diversity@k, better accuracy); False keeps the greedy pick order.
    filters: the call's own filters (as the services take them): a pin never inserts a
        product they rule out (price range, brand, stock...).

    Example
    -------
    >>> hits2, report = apply(hits, engine.catalog(), diversity=0.3, category_cap=3)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    check_param("diversity", diversity, 0.0 <= diversity <= 1.0, "a float in [0, 1]", "rerank.apply")
    check_param("method", method, method in _METHODS, "one of 'mmr', 'maxsum', 'dpp'", "rerank.apply")
    check_param("k", k, isinstance(k, int) and k >= 1, "an int >= 1", "rerank.apply")
    report = RerankReport()
    ids_in = [h.id for h in hits]
    work = list(hits)
    idx = np.array([catalog.index.get(h.id, -1) for h in work], dtype=np.int64)
    scores = np.array([h.score for h in work], dtype=np.float64)
    rset = rules if isinstance(rules, RuleSet) else RuleSet(rules=list(rules or []))
    act = active_rules(rset, context)

    # 1. removals: out of stock, excluded
    keep = np.ones(len(work), dtype=bool)
    if rset.hide_out_of_stock and len(work):
        oos = (idx >= 0) & ~catalog.in_stock[np.where(idx >= 0, idx, 0)]
        for j in np.flatnonzero(oos & keep):
            report.removed[work[j].id] = "out of stock"
        keep &= ~oos
        report.steps.append("hide_out_of_stock")
    for r in act:
        if r.action != "exclude":
            continue
        m = r.match.mask(catalog, idx) & keep
        for j in np.flatnonzero(m):
            report.removed[work[j].id] = f"rule {r.name!r}"
        if m.any():
            report.rules_applied[r.name] = [work[j].id for j in np.flatnonzero(m)]
        keep &= ~m
    work = [h for h, kk in zip(work, keep) if kk]
    idx, scores = idx[keep], scores[keep]

    # 2. boost / bury in units of the list's score spread, so weights read the same everywhere
    delta = np.zeros(len(work))
    spread = float(scores.max() - scores.min()) if len(scores) > 1 else 1.0
    spread = spread or 1.0
    for r in act:
        if r.action not in ("boost", "bury"):
            continue
        m = r.match.mask(catalog, idx)
        if m.any():
            delta[m] += (r.weight if r.action == "boost" else -r.weight) * spread
            report.rules_applied[r.name] = [work[j].id for j in np.flatnonzero(m)]
    if delta.any():
        report.steps.append("boost_bury")
        new_scores = scores + delta
        o = np.argsort(-new_scores, kind="stable")
        work = [work[j].with_(score=float(new_scores[j]), sources={**work[j].sources, "rules": float(delta[j])})
                if delta[j] else work[j] for j in o]
        idx, scores = idx[o], new_scores[o]

    rel = _relevance(scores)
    order = np.arange(len(work))

    # 3. diversity
    if diversity > 0 and len(work) > 1:
        m = min(len(work), max(k, pool if pool is not None else 3 * k))
        cats = _group_of_category(catalog, idx[:m])
        feats = None
        if similarity is not None:
            sim = np.asarray(similarity)
            feats = sim[:m, :m] if sim.shape == (len(work), len(work)) else sim[:m]
        else:
            emb = None
            if embeddings is not None:
                sub = idx[:m]
                emb = np.zeros((m, embeddings.shape[1]), dtype=np.float32)
                emb[sub >= 0] = embeddings[sub[sub >= 0]]
            has_cat = bool((cats != "").any())
            feats = item_features(emb, cats if has_cat else None, category_weight)
        if feats is None:
            report.stats["diversity"] = "skipped: no embeddings, similarity or categories"
        else:
            div = _METHODS[method](rel[:m], feats, k, diversity)
            if sort_selected:
                # the diversified top k is one set; showing it best-first keeps its diversity@k
                # and wins back accuracy (bench/rerank.py: 'sorted' series)
                head = div[:k]
                div = np.concatenate([head[np.argsort(-rel[head], kind="stable")], div[k:]])
            order = np.concatenate([div, np.arange(m, len(work))])
            report.steps.append(f"diversity_{method}")

    # 4. category caps
    if category_cap is not None:
        cats = _group_of_category(catalog, idx)
        order = _category_cap(order, cats, category_cap, k)
        report.steps.append("category_cap")

    # 5. exposure fairness over what diversity produced (its order is the relevance now)
    if fairness is not None and len(work):
        groups = _group_of(catalog, idx[order], fairness_by)
        pos_rel = -np.arange(len(order), dtype=np.float64) if not np.array_equal(order, np.arange(len(order))) \
            else rel
        fr = exposure_fair_rerank(pos_rel, groups, ExposureBounds(
            k=min(fairness.k, k) if fairness.k else k, max_share=fairness.max_share,
            max_by_group=dict(fairness.max_by_group), min_by_group=dict(fairness.min_by_group)))
        order = order[fr.order]
        report.steps.append("fairness")
        report.stats.update(fairness_feasible=fr.feasible, relevance_cost=fr.relevance_cost,
                            exposure_shares=fr.shares)

    out = [work[j] for j in order]

    # 6. pins win over everything; pinned ids not among the candidates are inserted
    pins = [r for r in act if r.action == "pin"]
    if pins:
        report.steps.append("pin")
        allowed: np.ndarray | None = None  # filter mask, computed only if a pin would insert
        for r in sorted(pins, key=lambda r: r.position or 0):
            cur_idx = np.array([catalog.index.get(h.id, -1) for h in out], dtype=np.int64)
            m = r.match.mask(catalog, cur_idx)
            pinned = [out[j] for j in np.flatnonzero(m)]
            have = {h.id for h in out}
            for pid in r.match.ids:
                if pid in have or pid not in catalog.index or pid in report.removed:
                    continue
                j = catalog.index[pid]
                if not r.match.mask(catalog, np.array([j]))[0]:
                    continue
                if filters:
                    if allowed is None:
                        from shopsense.catalog import match_mask as filter_mask

                        allowed = filter_mask(catalog, filters)
                    if allowed is not None and not allowed[j]:
                        report.removed[pid] = "pinned, but outside this call's filters"
                        continue
                pinned.append(Hit(pid, float("nan"), "pinned", product=catalog.products[j]))
                report.inserted.append(pid)
            if not pinned:
                continue
            pinned = [h.with_(sources={**h.sources, "pinned": float(r.position or 1)}) for h in pinned]
            pid_set = {h.id for h in pinned}
            rest = [h for h in out if h.id not in pid_set]
            at = min((r.position or 1) - 1, len(rest))
            out = rest[:at] + pinned + rest[at:]
            report.rules_applied[r.name] = [h.id for h in pinned]

    if explain_reasons:
        need = [i for i, h in enumerate(out) if not h.reason]
        if need:
            done = explain([out[i] for i in need], catalog, context)
            for i, h in zip(need, done):
                out[i] = h
    report.moved = diff_positions(ids_in, [h.id for h in out])
    report.stats["ms"] = (time.perf_counter() - t0) * 1e3
    return out, report


def _group_of_category(catalog: Any, idx: np.ndarray) -> np.ndarray:
    out = np.full(len(idx), "", dtype=object)
    ok = idx >= 0
    out[ok] = catalog.category_leaf[idx[ok]]
    return out


@dataclass
class Reranker:
    """Per-surface re-ranking settings plus the shop's rules; call :meth:`rerank`.

    ``Reranker.from_home(engine.home)`` reads ``rules.json``; ``lambdas`` sets the
    diversity knob per surface (e.g. ``{"search": 0.1, "recommend": 0.3}``).
    """

    diversity: float = DEFAULT_LAMBDA
    lambdas: dict[str, float] = field(default_factory=dict)
    method: Literal["mmr", "maxsum", "dpp"] = DEFAULT_METHOD
    category_weight: float = 0.5
    category_cap: int | None = None
    fairness: ExposureBounds | None = None
    fairness_by: str = "brand"
    pool: int | None = None
    rules: RuleSet = field(default_factory=RuleSet)

    @classmethod
    def from_home(cls, home: str | Path, **kwargs: Any) -> Reranker:
        return cls(rules=load_rules(home), **kwargs)

    def rerank(self, hits: Sequence[Hit], catalog: Any, *, embeddings: np.ndarray | None = None,
               similarity: np.ndarray | None = None, k: int = 10,
               context: Mapping[str, Any] | None = None, diversity: float | None = None,
               filters: Mapping[str, Any] | None = None) -> tuple[list[Hit], RerankReport]:
        surface = (context or {}).get("surface")
        lam = diversity if diversity is not None else self.lambdas.get(surface, self.diversity)
        return apply(hits, catalog, embeddings=embeddings, similarity=similarity, diversity=lam,
                     method=self.method, category_weight=self.category_weight,
                     category_cap=self.category_cap, rules=self.rules, fairness=self.fairness,
                     fairness_by=self.fairness_by, k=k, pool=self.pool, context=context, filters=filters)
