"""Lesson 5: bundles, complements and substitutes.

UCI Online Retail (CC BY 4.0): invoices of a UK gift shop as baskets of stock codes. What is
bought together (complements) is not what replaces each other (substitutes); a bundle is
chosen as a whole, within a budget.

    python docs/lessons/05_bundles.py [--size 8000] [--check]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _course import cli, heading, table

from shopsense.bundles import ComplementModel, CoPurchase, basket_matrix, solve_bundle
from shopsense.datasets import load_online_retail_baskets, load_online_retail_products
from shopsense.eval import evaluate_completion, hide_one, split_baskets
from shopsense.text import TextEncoder

ANCHOR = "85123A"  # WHITE HANGING HEART T-LIGHT HOLDER, the shop's best seller


def main(size: int = 8000) -> dict[str, Any]:
    heading("1. Invoices as baskets")
    raw = load_online_retail_baskets(limit=size)
    products = {p.id: p for p in load_online_retail_products()}
    items = [i for i in raw.item_ids() if i in products]  # fee and bookkeeping codes are not products
    index = {code: i for i, code in enumerate(items)}
    baskets = [np.array(sorted({index[c] for c in row if c in index})) for _, row in raw]
    baskets = [b for b in baskets if len(b) > 0]
    X = basket_matrix(baskets, len(items))
    title = [products[c].title for c in items]
    price = np.array([products[c].price or 0.0 for c in items])
    print(f"{len(baskets)} baskets over {len(items)} products, {X.nnz / len(baskets):.1f} products per basket")

    heading("2. Bought together: support, confidence, lift")
    cp = CoPurchase(min_support=3).fit(X)
    a = index[ANCHOR]
    rows = []
    for metric in ("confidence", "lift"):
        top, _ = cp.top(a, k=3, metric=metric)
        for j in top:
            rows.append({"ranked by": metric, "with": title[j][:38], "baskets": int(cp.pair_counts_[a, j]),
                         "confidence": cp.confidence(a, int(j)), "lift": cp.lift(a, int(j))})
    print(f"anchor: {title[a]} ({int(cp.item_counts_[a])} baskets)")
    table(rows, floats=3)

    heading("3. Complements and substitutes")
    vectors = TextEncoder().encode_documents(title)  # short titles: cheap to embed
    model = ComplementModel(text_weight=0.3).fit(X, embeddings=vectors)
    adds = model.rank([[a]], k=5).indices[0]
    subs, _ = model.substitutes(a, k=5)
    print("goes with it:    ", [title[j][:32] for j in adds])
    print("could replace it:", [title[j][:32] for j in subs])

    heading("4. Does it predict the hidden item of a basket?")
    split = split_baskets(baskets, mode="random", test_fraction=0.2, seed=0)
    cases = hide_one(split.test, seed=0)
    Xtr = basket_matrix(split.train, len(items))
    held = ComplementModel(text_weight=0.3).fit(Xtr, embeddings=vectors)
    counts = np.asarray(Xtr.sum(axis=0)).ravel()

    def popular(contexts: list[np.ndarray], k: int) -> np.ndarray:
        out = []
        for c in contexts:
            order = np.argsort(-counts, kind="stable")
            out.append(order[~np.isin(order, c)][:k])
        return np.array(out)

    def complement(contexts: list[np.ndarray], k: int) -> np.ndarray:
        return held.rank(list(contexts), k=k).indices

    scores = []
    for name, fn in (("popularity", popular), ("complement model", complement)):
        m = evaluate_completion(fn, cases, k=10)
        scores.append({"system": name, "Hit@10": float(np.mean(m["hit@10"]))})
    print(f"{len(cases.targets)} test baskets, one item hidden in each")
    table(scores)

    heading("5. A bundle within a budget")
    cand = model.rank([[a]], k=20).indices[0]
    cand = cand[cand >= 0]
    relevance = model.score([[a]])[0, cand].clip(min=0)
    lift = cp.lift_matrix()[cand][:, cand].toarray()
    pair = np.log1p(lift) * 0.1  # items that also go with each other
    budget = 15.0
    sol = solve_bundle(relevance, pair, price[cand], np.full(len(cand), -1), n_pick=3, budget=budget,
                       max_per_category=None)
    chosen = [int(cand[i]) for i in sol.chosen]
    print(f"with {title[a]} (£{price[a]:.2f}), for at most £{budget:.2f} more:")
    for j in chosen:
        print(f"  £{price[j]:6.2f}  {title[j]}")
    print(f"  total £{price[chosen].sum():.2f}; optimal: {sol.optimal}")
    return {"X": X, "copurchase": cp, "index": index, "hit": scores, "bundle": chosen, "price": price,
            "budget": budget}


# -- exercise -------------------------------------------------------------------------------
def exercise(X: Any, i: int, j: int) -> float:
    """YOUR TURN: compute the lift of products ``i`` and ``j`` yourself from the baskets matrix
    ``X`` (one row per basket, 1 where the basket holds the product):
    lift = P(i and j) / (P(i) P(j)). (The body below is one answer.)"""
    X = X.tocsc()
    n = X.shape[0]
    has_i = X[:, i].toarray().ravel() > 0
    has_j = X[:, j].toarray().ravel() > 0
    return float((has_i & has_j).mean() / (has_i.mean() * has_j.mean())) if n else 0.0


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Your lift must equal ``CoPurchase.lift`` on the anchor's strongest pair."""
    result = result or main(1500)
    cp, a = result["copurchase"], result["index"][ANCHOR]
    j = int(cp.top(a, k=1, metric="lift")[0][0])
    mine = (solution or exercise)(result["X"], a, j)
    assert abs(mine - cp.lift(a, j)) < 1e-6, f"your lift is {mine:.4f}; CoPurchase says {cp.lift(a, j):.4f}"
    print(f"exercise: correct, lift = {mine:.2f}")


if __name__ == "__main__":
    cli(main, exercise_check, "invoices to read", 8000)
