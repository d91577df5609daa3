"""Lesson 6: re-ranking for diversity, fairness and business rules, and explanations.

Amazon Office Products (McAuley et al., research use): EASE recommends for each shopper,
then one finishing stage trades a little accuracy for variety, caps a brand's exposure,
applies the shop's rules and says why each item is there.

    python docs/lessons/06_rerank.py [--size 2000] [--check]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _course import cli, heading, table

from shopsense.catalog import Catalog
from shopsense.datasets import load_office_products, load_office_sequences
from shopsense.eval import loo_split
from shopsense.metrics import ndcg_at_k
from shopsense.recommend import EASE, Interactions
from shopsense.rerank import (
    ExposureBounds,
    Match,
    Rule,
    RuleSet,
    apply,
    dpp_rerank,
    exposure_fair_rerank,
    exposure_shares,
    item_features,
    maxsum_rerank,
    mmr_rerank,
    similarity_matrix,
)
from shopsense.results import Hit


def family(p: Any) -> str:
    """A product's second category level, e.g. 'Printer Ink & Toner' ('' when it has none)."""
    return p.category[1] if len(p.category) > 1 else ""


def ild(sim: np.ndarray) -> float:
    """Intra-list diversity: the mean of 1 - similarity over the pairs of a list."""
    n = len(sim)
    return float((n * n - sim.sum()) / (n * (n - 1))) if n > 1 else 0.0


def main(size: int = 2000) -> dict[str, Any]:
    heading("1. EASE candidates for every shopper")
    catalog = Catalog(load_office_products())
    seqs = load_office_sequences(limit_users=size)
    hists = [np.array([catalog.index[i] for i in s]) for _, s in seqs]
    split = loo_split(hists, n_items=len(catalog))
    ease = EASE(l2=50.0).fit(Interactions.from_sequences(split.train, len(catalog)))
    cands = ease.recommend(split.test_hist, 30)
    cats = np.array([family(p) for p in catalog.products], dtype=object)
    features = item_features(None, cats, category_weight=1.0)  # similar = same product family
    print(f"{len(split.test_hist)} shoppers, 30 candidates each, {len(set(cats))} product families")

    heading("2. Diversity: accuracy against variety")
    methods = {"relevance only": None, "MMR 0.4": mmr_rerank, "MaxSum 0.4": maxsum_rerank, "DPP 0.4": dpp_rerank}
    rows = []
    for name, method in methods.items():
        ndcg, div, families = [], [], []
        for u in range(len(split.test_hist)):
            idx, rel = cands.indices[u], cands.scores[u]
            keep = idx >= 0
            idx, rel = idx[keep], rel[keep]
            sim = similarity_matrix(features[idx])
            # each re-ranker returns every candidate, its picks first: the shopper sees ten
            order = (method(rel, sim, k=10, lam=0.4) if method else np.arange(len(idx)))[:10]
            ndcg.append(ndcg_at_k(idx[order], {int(split.test_target[u]): 1.0}, 10))
            div.append(ild(sim[np.ix_(order, order)]))
            families.append(len(set(cats[idx[order]])))
        rows.append({"re-ranking": name, "NDCG@10": float(np.mean(ndcg)), "ILD@10": float(np.mean(div)),
                     "families in top 10": float(np.mean(families))})
    table(rows, floats=4)

    heading("3. Fairness: no brand above 30% of the exposure")

    def brands_of(u: int) -> np.ndarray:
        return np.array([catalog.products[i].brand or "(none)" for i in cands.indices[u] if i >= 0], dtype=object)

    def top_share(u: int) -> float:
        b = [x for x in brands_of(u)[:10] if x != "(none)"]
        return max((b.count(x) for x in b), default=0) / 10

    u = max(range(len(split.test_hist)), key=lambda v: (top_share(v), len(split.test_hist[v])))
    idx = cands.indices[u][cands.indices[u] >= 0]
    brands = brands_of(u)
    fair = exposure_fair_rerank(cands.scores[u][: len(idx)], brands, ExposureBounds(k=10, max_share=0.3))
    before = exposure_shares(brands, np.arange(len(idx)), 10)
    after = exposure_shares(brands, fair.order, 10)
    top = max(before, key=before.get)
    print(f"{top!r}: {before[top]:.0%} of the exposure before, {after.get(top, 0):.0%} after; "
          f"feasible: {fair.feasible}, relevance given up: {fair.relevance_cost:.3f}")

    heading("4. Rules and reasons for one shopper")
    because = ease.because(split.test_hist[u], idx)  # the history item behind each candidate
    hits = [Hit(catalog.products[i].id, float(s), "ease", evidence={"because_item": catalog.products[int(b)].id})
            for i, s, b in zip(idx, cands.scores[u], because)]
    brand = next(b for b in brands[:10] if b != "(none)")
    rules = RuleSet(rules=[Rule(name="no-" + brand.lower().replace(" ", "-")[:30], action="exclude",
                                match=Match(brand=brand))])
    finished, report = apply(hits, catalog, rules=rules, diversity=0.4, similarity=features[idx], k=10,
                             context={"surface": "recommend"})
    for h in finished[:5]:
        p = catalog.products[catalog.index[h.id]]
        print(f"  {p.title[:44]:<44} [{p.brand or '-'}]  {h.reason[:70]}")
    print(f"what changed: steps {report.steps}, {len(report.removed)} removed by rule {rules.rules[0].name!r}, "
          f"{len(report.moved)} moved")
    return {"catalog": catalog, "hits": hits, "diversity": rows, "fair": fair, "brands": brands}


# -- exercise -------------------------------------------------------------------------------
def exercise(hits: list[Hit], catalog: Catalog, promote: str, hide_brand: str) -> RuleSet:
    """YOUR TURN: the shop wants product ``promote`` shown first, and no product of brand
    ``hide_brand`` anywhere in the list. Write the rules: a ``RuleSet`` of
    ``Rule(name=..., action=..., match=Match(...))``, where the actions are pin (with a
    ``position``), boost, bury and exclude. (The body below is one answer.)"""
    return RuleSet(rules=[
        Rule(name="promote", action="pin", position=1, match=Match(ids=[promote])),
        Rule(name="hide-brand", action="exclude", match=Match(brand=hide_brand)),
    ])


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """After your rules, the promoted product is first and the hidden brand is gone."""
    result = result or main(300)
    hits, catalog = result["hits"], result["catalog"]

    def brand(h: Hit) -> str:
        return catalog.products[catalog.index[h.id]].brand

    hide = brand(hits[0])
    promote = next(h.id for h in reversed(hits) if brand(h) != hide)  # deep in the list, another brand
    rules = (solution or exercise)(hits, catalog, promote, hide)
    finished, _ = apply(hits, catalog, rules=rules, k=10, context={"surface": "recommend"})
    assert finished and finished[0].id == promote, f"{promote} is not first"
    assert hide not in [brand(h) for h in finished], f"brand {hide!r} is still in the list"
    print(f"exercise: correct, {promote} is first and no {hide!r} product is shown")


if __name__ == "__main__":
    cli(main, exercise_check, "shoppers in the slice", 2000)
