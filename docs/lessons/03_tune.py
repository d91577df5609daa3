"""Lesson 3: fine-tuning the encoder on a shop's own judgments, and compressing it.

Home Depot judgments become (query, relevant product) pairs; the off-the-shelf MiniLM is
tuned on the pairs of one half of the queries and measured on the other half, then exported
to ONNX and quantised to int8 for fast CPU queries.

    python docs/lessons/03_tune.py [--size 1500] [--check]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _course import cli, heading, new_home, table

from shopsense.eval import load_homedepot, ndcg_at_k, query_split
from shopsense.text import OnnxTextEncoder, TextEncoder, export_onnx
from shopsense.tune import EncoderTuner, PairSet, pairs_from_judgments, split_pairs_by_query


def dense_ndcg(query_vecs: np.ndarray, doc_vecs: np.ndarray, gains: list[dict[int, float]]) -> float:
    """Mean NDCG@10 of ranking every product by cosine (the vectors are unit length)."""
    top = np.argsort(-(query_vecs @ doc_vecs.T), axis=1)[:, :10]
    return float(np.mean([ndcg_at_k(t, g, 10) for t, g in zip(top, gains)]))


def main(size: int = 1500, tune_seconds: float = 120.0, compress: bool = True) -> dict[str, Any]:
    home = new_home("lesson3")
    heading("1. Pairs from judgments, split by query")
    bench = load_homedepot(max_products=size)
    dev, test = query_split(bench.queries, test_fraction=0.5)
    pairs = pairs_from_judgments([bench.queries[i] for i in dev], [bench.gains[i] for i in dev])
    train, val = split_pairs_by_query(pairs, val_fraction=0.2)
    print(f"{len(dev)} dev queries -> {len(pairs)} pairs: {len(train)} to train on, {len(val)} to stop early; "
          f"{len(test)} test queries never seen")
    print("a pair:", repr(pairs.anchors[0]), "->", repr(bench.products[int(pairs.positives[0])].title))

    docs = [p.text() for p in bench.products]
    test_q = [bench.queries[i] for i in test]
    test_g = [bench.gains[i] for i in test]
    heading("2. The off-the-shelf encoder")
    base = TextEncoder()
    doc_vecs = base.encode_documents(docs)
    before = dense_ndcg(base.encode_queries(test_q), doc_vecs, test_g)
    rows = [{"encoder": "off-the-shelf MiniLM", "test NDCG@10": before}]
    out: dict[str, Any] = {"pairs": pairs, "train": train, "val": val, "before": before}

    model_dir: str = base.model_name
    if tune_seconds > 0:
        heading("3. Tuned on the dev pairs")
        tuner = EncoderTuner(batch_size=32, max_seconds=tune_seconds, eval_every=20).fit(train, docs, val)
        print(f"{tuner.steps_} steps in {tuner.wall_seconds_:.0f} s, stopped: {tuner.stop_reason_}")
        model_dir = str(tuner.save(home / "tuned"))
        tuned = TextEncoder(model_dir)
        after = dense_ndcg(tuned.encode_queries(test_q), tuned.encode_documents(docs), test_g)
        rows.append({"encoder": "tuned", "test NDCG@10": after})
        out["after"] = after

    if compress:
        heading("4. Compressed: ONNX int8")
        onnx = OnnxTextEncoder(model_dir, export_onnx(model_dir, home / "onnx", quantize=True), int8=True)
        int8 = dense_ndcg(onnx.encode_queries(test_q), onnx.encode_documents(docs), test_g)
        rows.append({"encoder": "the last one, int8 ONNX", "test NDCG@10": int8})
        speed = {}
        for name, enc in (("torch fp32", TextEncoder(model_dir, query_cache_size=0)),
                          ("onnx int8", OnnxTextEncoder(model_dir, home / "onnx", query_cache_size=0))):
            enc.encode_queries(["warm up"])
            t0 = time.perf_counter()
            for q in test_q:
                enc.encode_queries([q])
            speed[name] = 1000 * (time.perf_counter() - t0) / len(test_q)
        print("ms per query:", {k: round(v, 2) for k, v in speed.items()})
        out.update(int8=int8, ms_per_query=speed)
    table(rows)
    return out


# -- exercise -------------------------------------------------------------------------------
def exercise(pairs: PairSet, val_fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """YOUR TURN: split ``pairs`` into (train rows, validation rows) yourself, without
    ``split_pairs_by_query``, so that no query has pairs on both sides (a query seen in training
    would make validation look better than the shop's new queries will). About
    ``val_fraction`` of the pairs should be for validation. (The body below is one answer.)"""
    queries = sorted(set(pairs.anchors))
    held = set(queries[:: max(1, round(1 / val_fraction))])
    train = [i for i, a in enumerate(pairs.anchors) if a not in held]
    val = [i for i, a in enumerate(pairs.anchors) if a in held]
    return train, val


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Every pair on exactly one side, no query on both, and a validation side of 5-40%."""
    result = result or main(300, tune_seconds=0, compress=False)
    pairs = result["pairs"]
    train, val = (solution or exercise)(pairs)
    assert sorted([*train, *val]) == list(range(len(pairs))), "every pair must be on exactly one side"
    leaked = {pairs.anchors[i] for i in train} & {pairs.anchors[i] for i in val}
    assert not leaked, f"{len(leaked)} queries are on both sides, e.g. {sorted(leaked)[:3]}"
    assert 0.05 <= len(val) / len(pairs) <= 0.4, f"validation holds {len(val) / len(pairs):.0%} of the pairs"
    print(f"exercise: correct, {len(train)} training and {len(val)} validation pairs, no query on both sides")


if __name__ == "__main__":
    cli(main, exercise_check, "products in the slice", 1500)
