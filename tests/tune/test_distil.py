"""A smaller encoder by layer pruning plus distillation (issue 21), on a tiny real slice of
Home Depot: training must bring the student closer to the teacher on held-out texts, and
the saved student must be what the engine home's encoder (torch and ONNX int8) loads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shopsense.errors import ValidationError
from shopsense.tune import EncoderDistiller, prune_layers, save_distilled_encoder, spread_layers


@pytest.fixture(scope="session")
def texts(datasets_root: Path) -> dict[str, list[str]]:
    """~200 real product titles plus their judged queries, split into train / held-out."""
    from shopsense.eval import load_homedepot

    b = load_homedepot(datasets_root, max_products=200)
    all_texts = list(dict.fromkeys([p.title for p in b.products] + list(b.queries)))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(all_texts))
    held = [all_texts[i] for i in order[:40]]
    train = [all_texts[i] for i in order[40:]]
    return {"train": train, "held": held}


@pytest.fixture(scope="session")
def distilled(texts, tmp_path_factory):
    """One tiny distillation (1 epoch over ~200 texts, 3 of 6 layers), saved in an engine home."""
    import torch

    torch.set_num_threads(2)
    d = EncoderDistiller(layers=3, epochs=1, batch_size=16, lr=3e-4, val_fraction=0.0, max_seconds=300)
    teacher_vecs = d.teacher_vectors(texts["held"])
    # the untrained student: the same surgery, no training
    untrained = prune_layers(d._load_teacher(), spread_layers(6, 3))
    before = d._embed(untrained, texts["held"])
    d.fit(texts["train"])
    home = tmp_path_factory.mktemp("distil") / "home"
    path = save_distilled_encoder(d, home, version="s3")
    return {"d": d, "home": home, "path": path, "teacher": teacher_vecs, "before": before}


def test_spread_layers_keeps_first_and_last() -> None:
    assert spread_layers(6, 3) == [0, 3, 5]
    assert spread_layers(6, 2) == [0, 5]
    assert spread_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    assert spread_layers(6, 1) == [5]
    with pytest.raises(ValueError, match="layers"):
        spread_layers(6, 7)


def test_student_moves_toward_the_teacher_on_held_out_texts(distilled, texts) -> None:
    d = distilled["d"]
    assert d.steps_ > 0 and d.keep_ == [0, 3, 5]
    assert len(d.model_[0].auto_model.encoder.layer) == 3
    after = d.encode(texts["held"])
    cos_before = float((distilled["before"] * distilled["teacher"]).sum(1).mean())
    cos_after = float((after * distilled["teacher"]).sum(1).mean())
    # texts never trained on: distillation must close part of the gap pruning opened
    assert cos_after > cos_before + 0.03, (cos_before, cos_after)
    # and the student keeps the teacher's ranking of texts better than before
    sims_t = distilled["teacher"] @ distilled["teacher"].T
    corr = [np.corrcoef(sims_t.ravel(), (v @ v.T).ravel())[0, 1] for v in (distilled["before"], after)]
    assert corr[1] > corr[0]


def test_held_out_checkpoint_selection_and_manifest(texts) -> None:
    d = EncoderDistiller(layers=2, epochs=1, batch_size=16, lr=3e-4, val_fraction=0.2, eval_every=4,
                         max_seconds=120).fit(texts["train"][:120])
    m = d.manifest()
    assert m["layers_kept"] == [0, 5] and m["teacher_layers"] == 6 and m["val_texts"] > 0
    assert m["val_cosine"] >= m["val_cosine_before"]
    assert m["val_cosine"] == max(h["val_cosine"] for h in m["history"])


def test_saved_student_is_the_home_encoder_in_torch_and_onnx_int8(distilled, texts) -> None:
    from shopsense.config import Settings
    from shopsense.home import Home
    from shopsense.text import OnnxTextEncoder, active_encoder_path, encoder_for

    home, path, d = distilled["home"], distilled["path"], distilled["d"]
    assert active_encoder_path(home) == path
    enc = encoder_for(Settings(home=home), Home(home))
    assert enc.model_name == str(path)
    assert enc.model[0].auto_model.config.num_hidden_layers == 3
    v = enc.encode_documents(texts["held"][:20])
    np.testing.assert_allclose(v, d.encode(texts["held"][:20]), atol=1e-4)
    int8 = encoder_for(Settings(home=home, encoder_backend="onnx-int8"), Home(home))
    assert isinstance(int8, OnnxTextEncoder) and (path / "onnx" / "model_int8.onnx").exists()
    w = int8.encode_documents(texts["held"][:20])
    assert w.shape == v.shape and float((v * w).sum(1).min()) > 0.95


def test_bad_teacher_vectors_name_the_field(texts) -> None:
    d = EncoderDistiller(layers=3)
    with pytest.raises(ValidationError, match="teacher_vectors"):
        d.fit(texts["train"][:10], teacher_vectors=np.ones((9, 384), dtype=np.float32))
    with pytest.raises(ValidationError, match="row 0"):
        d.fit(texts["train"][:10], teacher_vectors=np.ones((10, 384), dtype=np.float32))
    with pytest.raises(ValidationError, match="keep"):
        prune_layers(d._load_teacher(), [3, 1])
