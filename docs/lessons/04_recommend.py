"""Lesson 4: recommenders, from popularity to the LambdaMART stack, and cold start.

Amazon Office Products 5-core (McAuley et al., research use): each shopper's purchases in
order. Leave-one-out: the last item of each shopper is hidden, every model ranks all items,
and Recall@10 / NDCG@10 say how often the hidden item comes back.

    python docs/lessons/04_recommend.py [--size 2000] [--check]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _course import cli, heading, table

from shopsense.datasets import datasets_root
from shopsense.eval import evaluate_model, loo_split, rank_model, read_office
from shopsense.recommend import (
    ALS,
    EASE,
    ContentRecommender,
    Interactions,
    ItemKNN,
    Popularity,
    RankingStack,
)
from shopsense.text import TextEncoder


def office_slice(users: int) -> tuple[list[np.ndarray], list[str]]:
    """The first ``users`` shoppers, with items renumbered 0..n-1 over what they bought, and
    each item's text (title and leaf category: what a shop knows before anyone buys)."""
    seqs, records = read_office(datasets_root() / "rec" / "amazon-office")
    seqs = seqs[:users]
    used = np.unique(np.concatenate(seqs))
    new = {int(old): i for i, old in enumerate(used)}
    def text(r: dict[str, Any]) -> str:  # the title's first words are enough to say what it is
        title = " ".join(str(r.get("title", "")).split()[:12])
        return f"{title}. {(r.get('categories') or '').split(',')[-1].strip()}"

    texts = [text(records[i]) for i in used]
    return [np.array([new[int(i)] for i in s]) for s in seqs], texts


def main(size: int = 2000) -> dict[str, Any]:
    heading("1. Shoppers and the hidden last item")
    seqs, texts = office_slice(size)
    split = loo_split(seqs, n_items=len(texts))
    train = Interactions.from_sequences(split.train, len(texts))
    print(f"{len(seqs)} shoppers, {len(texts)} items, {len(train.user)} training purchases")

    heading("2. Generators: each ranks every item")
    models = {
        "popularity": Popularity(),
        "item kNN": ItemKNN(neighbors=100),
        "EASE": EASE(l2=50.0),
        "ALS": ALS(factors=32, iterations=10),
    }
    rows = []
    for name, model in models.items():
        model.fit(train)
        m = evaluate_model(model, split.test_hist, split.test_target)
        rows.append({"model": name, "Recall@10": m["recall@10"], "NDCG@10": m["ndcg@10"],
                     "coverage@10": m["coverage@10"]})

    heading("3. The stack: LambdaMART over the generators' candidates")
    # fit on the validation target (the second-to-last item): the test item stays unseen
    stack = RankingStack(candidates=50, n_estimators=100, min_child_samples=10)
    stack.fit(generators=models, validation=(split.valid_hist, split.valid_target))
    m = evaluate_model(stack, split.test_hist, split.test_target)
    rows.append({"model": "LambdaMART stack", "Recall@10": m["recall@10"], "NDCG@10": m["ndcg@10"],
                 "coverage@10": m["coverage@10"]})
    table(rows)
    top = sorted(stack.feature_importance().items(), key=lambda kv: -kv[1])[:5]
    print("what the stack leans on most:", ", ".join(f"{k} {v:.2f}" for k, v in top))

    heading("4. Cold start: items nobody bought yet")
    seen = np.bincount(train.item, minlength=len(texts)) > 0
    cold = ~seen[split.test_target]
    print(f"{int(cold.sum())} of {len(cold)} hidden items were never bought in training")
    vectors = TextEncoder().encode_documents(texts)
    content = ContentRecommender().fit(train, item_vectors=vectors)
    hist = [h for h, c in zip(split.test_hist, cold) if c]
    target = split.test_target[cold]
    cold_rows = []
    for name, model in (("EASE", models["EASE"]), ("content (MiniLM)", content)):
        top = rank_model(model, hist, 10) if len(hist) else np.zeros((0, 10), int)
        hits = float(np.mean([t in row for t, row in zip(target, top)])) if len(hist) else 0.0
        cold_rows.append({"model": name, "Hit@10 on cold items": hits})
    table(cold_rows)
    return {"split": split, "models": {**models, "stack": stack, "content": content}, "table": rows,
            "cold": cold_rows, "n_items": len(texts)}


# -- exercise -------------------------------------------------------------------------------
def exercise(model: Any, histories: list[np.ndarray], targets: np.ndarray) -> float:
    """YOUR TURN: compute Recall@10 of ``model`` yourself: for each history, take the model's
    top 10 (``model.recommend([history], 10)``, which skips items already in the history) and
    count how often the hidden target is among them. (The body below is one answer.)"""
    hits = 0
    for history, target in zip(histories, targets):
        top = model.recommend([history], 10).indices[0]
        hits += int(target in top)
    return hits / len(targets)


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Your Recall@10 of EASE must match the library's on the same users."""
    result = result or main(300)
    split, ease = result["split"], result["models"]["EASE"]
    n = min(200, len(split.test_target))
    mine = (solution or exercise)(ease, split.test_hist[:n], split.test_target[:n])
    theirs = evaluate_model(ease, split.test_hist[:n], split.test_target[:n])["recall@10"]
    assert abs(mine - theirs) < 1e-9, f"your Recall@10 is {mine:.4f}; evaluate_model says {theirs:.4f}"
    print(f"exercise: correct, EASE Recall@10 = {mine:.4f} on {n} shoppers")


if __name__ == "__main__":
    cli(main, exercise_check, "shoppers in the slice", 2000)
