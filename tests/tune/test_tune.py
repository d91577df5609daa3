"""Encoder tuning (issue 8): pair mining, a tiny real tuning run that the engine then
uses without code change, LoRA, and the ONNX back-end's parity with PyTorch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shopsense.tune import (
    EncoderTuner,
    PairSet,
    active_encoder_path,
    item_pairs_from_events,
    mine_hard_negatives,
    pairs_from_events,
    pairs_from_judgments,
    save_tuned_encoder,
    split_pairs_by_query,
)


@pytest.fixture(scope="session")
def homedepot(datasets_root: Path):
    """A small real slice of Home Depot: ~150 products with all their judgments."""
    from shopsense.eval import load_homedepot

    return load_homedepot(datasets_root, max_products=150)


@pytest.fixture(scope="session")
def tuned(homedepot, tmp_path_factory):
    """One tiny full fine-tune (a few dozen real pairs, 1 epoch), saved in an engine home."""
    import torch

    torch.set_num_threads(2)
    docs = [p.text() for p in homedepot.products]
    pairs = pairs_from_judgments(homedepot.queries, homedepot.gains, min_gain=1.0)
    # no validation split here: with so few pairs the best checkpoint could be the
    # untouched model, and this test needs weights that moved
    tuner = EncoderTuner(epochs=1, batch_size=16, lr=1e-4, max_seconds=120)
    tuner.fit(pairs.subset(np.arange(min(48, len(pairs)))), docs)
    home = tmp_path_factory.mktemp("tuned") / "home"
    path = save_tuned_encoder(tuner, home, version="t1")
    return {"home": home, "path": path, "tuner": tuner, "docs": docs, "bench": homedepot}


def test_pairs_from_judgments_positives_and_negatives(homedepot) -> None:
    pairs = pairs_from_judgments(homedepot.queries, homedepot.gains, min_gain=1.0, negative_max_gain=0.34)
    assert len(pairs) > 30
    for a, p, n in zip(pairs.anchors, pairs.positives.tolist(), pairs.negatives.tolist()):
        g = homedepot.gains[homedepot.queries.index(a)]
        assert g[p] >= 1.0
        assert n == -1 or g[n] <= 0.34


def test_split_by_query_never_shares_a_query(homedepot) -> None:
    pairs = pairs_from_judgments(homedepot.queries, homedepot.gains)
    tr, va = split_pairs_by_query(pairs, 0.3)
    assert len(tr) + len(va) == len(pairs) and len(va) > 0
    assert not set(tr.anchors) & set(va.anchors)


def test_pairs_from_search_then_click_events(engine, homedepot) -> None:
    prods = homedepot.products[:5]
    engine.add_products(prods)
    ids = [p.id for p in prods]
    t = 1_700_000_000
    engine.add_events([
        {"user_id": "u1", "type": "search", "query": "deck over", "timestamp": t, "session_id": "s1"},
        {"user_id": "u1", "type": "view", "item_id": ids[0], "timestamp": t + 5, "session_id": "s1"},
        {"user_id": "u1", "type": "click", "item_id": ids[1], "timestamp": t + 10, "session_id": "s1"},
        {"user_id": "u1", "type": "purchase", "item_id": ids[1], "timestamp": t + 60, "session_id": "s1"},
        {"user_id": "u1", "type": "search", "query": "angle bracket", "timestamp": t + 100, "session_id": "s1"},
        {"user_id": "u1", "type": "add_to_cart", "item_id": ids[2], "timestamp": t + 120, "session_id": "s1"},
        # too late after the search: not credited
        {"user_id": "u1", "type": "click", "item_id": ids[3], "timestamp": t + 10_000, "session_id": "s1"},
        # another session without a search: nothing
        {"user_id": "u2", "type": "click", "item_id": ids[4], "timestamp": t + 5, "session_id": "s2"},
    ])
    cat = engine.catalog()
    pairs = pairs_from_events(engine.store.events(), cat.index, window_s=1800)
    got = {(a, cat.ids[p], w) for a, p, w in zip(pairs.anchors, pairs.positives.tolist(), pairs.weights.tolist())}
    assert got == {("deck over", ids[1], 3.0), ("angle bracket", ids[2], 2.0)}
    items = item_pairs_from_events(engine.store.events(), cat.index, cat.texts())
    assert len(items) >= 2 and all(isinstance(a, str) for a in items.anchors)


def test_mined_negatives_are_never_known_positives(homedepot) -> None:
    rng = np.random.default_rng(0)
    pairs = pairs_from_judgments(homedepot.queries, homedepot.gains, negative_max_gain=None)
    dv = rng.normal(size=(len(homedepot.products), 8)).astype(np.float32)
    qv = rng.normal(size=(len(pairs.queries()), 8)).astype(np.float32)
    mined = mine_hard_negatives(pairs, qv, dv, rank_range=(0, 20))
    assert (mined.negatives >= 0).all()
    for a, n in zip(mined.anchors, mined.negatives.tolist()):
        assert n not in pairs.known[a]


def test_tiny_tune_is_saved_and_used_by_the_engine(tuned) -> None:
    from shopsense import Engine

    home, path = tuned["home"], tuned["path"]
    assert active_encoder_path(home) == path
    m = tuned["tuner"].manifest()
    assert m["steps"] >= 1 and m["method"] == "full" and m["wall_seconds"] > 0
    eng = Engine(home)
    try:
        assert eng.encoder.model_name == str(path)  # picked up without configuration
        bench = tuned["bench"]
        eng.add_products(bench.products)
        res = eng.search(bench.queries[0], k=5)
        assert len(res.hits) > 0
        # the engine's vectors are the tuned model's, not the stock model's
        from shopsense.text import TextEncoder

        q = bench.queries[0]
        v_tuned = TextEncoder(str(path)).encode_queries([q])
        v_engine = eng.encoder.encode_queries([q])
        assert np.allclose(v_engine, v_tuned, atol=1e-5)
        v_stock = TextEncoder().encode_queries([q])
        assert not np.allclose(v_stock, v_tuned, atol=1e-4)
    finally:
        eng.close()


def test_lora_tuning_runs_and_saves_a_plain_model(homedepot, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    docs = [p.text() for p in homedepot.products]
    pairs = pairs_from_judgments(homedepot.queries, homedepot.gains)
    tuner = EncoderTuner(method="lora", epochs=1, batch_size=8, lora_r=4, max_seconds=60)
    tuner.fit(pairs.subset(np.arange(16)), docs)
    out = tuner.save(tmp_path / "lora")
    model = SentenceTransformer(str(out), device="cpu")  # merged: loads without peft
    assert "lora" not in " ".join(n for n, _ in model.named_parameters())
    v = model.encode(["deck screws"], normalize_embeddings=True)
    assert v.shape == (1, 384) and np.isfinite(v).all()


def test_onnx_fp32_matches_torch_and_int8_encodes(tuned, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from shopsense.text import OnnxTextEncoder, TextEncoder, export_onnx

    path = str(tuned["path"])
    out = export_onnx(path, tmp_path / "onnx", quantize=True)
    titles = [p.title for p in tuned["bench"].products[:100]]
    ref = TextEncoder(path).encode_documents(titles)
    fp32 = OnnxTextEncoder(path, out, int8=False).encode_documents(titles)
    assert fp32.dtype == np.float32 and fp32.shape == ref.shape
    assert (ref * fp32).sum(1).min() > 0.99
    int8 = OnnxTextEncoder(path, out, int8=True)
    v8 = int8.encode_documents(titles)
    assert np.allclose(np.linalg.norm(v8, axis=1), 1.0, atol=1e-4)
    assert (ref * v8).sum(1).mean() > 0.95
    q = int8.encode_queries([titles[0], titles[0]])  # through the query cache
    assert np.allclose(q[0], q[1])


def test_settings_select_the_onnx_backend(tuned) -> None:
    from shopsense import Engine
    from shopsense.text import OnnxTextEncoder

    eng = Engine(tuned["home"], encoder_backend="onnx-int8")
    try:
        enc = eng.encoder
        assert isinstance(enc, OnnxTextEncoder) and enc.int8
        assert enc.base_model_name == str(tuned["path"])  # the tuned model, exported on first use
        v = enc.encode_queries(["cordless drill"])
        assert v.shape == (1, enc.dim)
        assert enc.model.tokenizer is not None
    finally:
        eng.close()


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="method"):
        EncoderTuner(method="adapter")
    with pytest.raises(ValueError, match="train"):
        EncoderTuner().fit(PairSet(["q"], np.array([0])), ["doc"])


@pytest.mark.slow
def test_cli_tune_from_store_events_then_export(homedepot, tmp_path) -> None:
    from typer.testing import CliRunner

    from shopsense import Engine
    from shopsense.cli import app

    home = tmp_path / "home"
    eng = Engine(home)
    eng.add_products(homedepot.products[:60])
    ids = {p.id for p in homedepot.products[:60]}
    events, t = [], 1_700_000_000
    for qi, (q, g) in enumerate(zip(homedepot.queries, homedepot.gains)):
        good = [homedepot.products[r].id for r, x in g.items() if x >= 1.0 and homedepot.products[r].id in ids]
        if not good:
            continue
        s = f"s{qi}"
        events.append({"user_id": f"u{qi}", "type": "search", "query": q, "timestamp": t, "session_id": s})
        events += [{"user_id": f"u{qi}", "type": "click", "item_id": p, "timestamp": t + 5 + j, "session_id": s}
                   for j, p in enumerate(good)]
        t += 100
    eng.add_events(events)
    eng.close()
    r = CliRunner().invoke(app, ["tune", "--home", str(home), "--epochs", "1", "--batch-size", "8",
                                 "--max-minutes", "1", "--version", "cli1", "--val-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    assert active_encoder_path(home) == home / "models" / "encoder" / "cli1"
    r = CliRunner().invoke(app, ["export-onnx", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert (home / "models" / "encoder" / "cli1" / "onnx" / "model_int8.onnx").exists()
