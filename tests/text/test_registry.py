"""The encoder registry: the active tuned encoder of a home, where ONNX exports live,
the settings -> encoder factory, and one direction of imports (issue "One direction
of dependency"). Nothing here loads a model."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopsense.config import DEFAULT_MODEL, Settings
from shopsense.errors import NotFoundError
from shopsense.home import Home
from shopsense.text import (
    ENCODER_MANIFEST,
    OnnxTextEncoder,
    TextEncoder,
    activate_encoder,
    active_encoder_path,
    encoder_dir,
    encoder_for,
    encoder_model_for,
    item_embeddings,
    onnx_dir_for,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "shopsense"


def _fake_tuned(home: Home, version: str) -> Path:
    path = encoder_dir(home, version)
    path.mkdir(parents=True)
    (path / ENCODER_MANIFEST).write_text("{}")
    return path


def test_activate_then_read_the_pointer(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    assert active_encoder_path(home) is None
    path = _fake_tuned(home, "v1")
    assert path == home.encoders / "v1"
    activate_encoder(home, "v1")
    assert json.loads(home.encoder_pointer.read_text()) == {"version": "v1"}  # the format homes already hold
    assert active_encoder_path(home) == path
    assert active_encoder_path(home.root) == path  # a plain path still works
    activate_encoder(home, None)
    assert active_encoder_path(home) is None and not home.encoder_pointer.exists()


def test_pointer_written_before_the_registry_is_read(tmp_path: Path) -> None:
    home = Home(tmp_path)
    path = _fake_tuned(home, "old")
    (home.encoders / "current.json").write_text('{"version": "old"}')
    assert active_encoder_path(home) == path


@pytest.mark.parametrize("pointer", ['{"version": "gone"}', "not json", '["v1"]', "{}"])
def test_broken_or_dangling_pointer_means_no_tuned_encoder(tmp_path: Path, pointer: str) -> None:
    home = Home(tmp_path)
    _fake_tuned(home, "v1")
    home.encoder_pointer.write_text(pointer)
    assert active_encoder_path(home) is None


def test_activating_a_missing_version_fails_and_keeps_the_pointer(tmp_path: Path) -> None:
    home = Home(tmp_path)
    _fake_tuned(home, "v1")
    activate_encoder(home, "v1")
    encoder_dir(home, "half").mkdir()  # no manifest: an interrupted save
    for version in ("nope", "half"):
        with pytest.raises(NotFoundError):
            activate_encoder(home, version)
    assert active_encoder_path(home) == home.encoders / "v1"
    assert not list(home.encoders.glob("*.tmp"))


def test_onnx_dir_inside_a_tuned_model_else_under_home_onnx(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    tuned = _fake_tuned(home, "v1")
    assert onnx_dir_for(str(tuned), home) == tuned / "onnx"
    assert onnx_dir_for(DEFAULT_MODEL, home) == home.onnx / DEFAULT_MODEL
    assert onnx_dir_for("sentence-transformers/x y", home) == home.onnx / "sentence-transformers_x_y"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert onnx_dir_for(outside, home).parent == home.onnx


def test_encoder_for_picks_the_tuned_model_and_the_backend(tmp_path: Path) -> None:
    home = Home(tmp_path)
    settings = Settings(home=tmp_path)
    enc = encoder_for(settings, home)
    assert type(enc) is TextEncoder and enc.model_name == DEFAULT_MODEL
    assert enc.batch_size == settings.encoder_batch_size
    tuned = _fake_tuned(home, "v1")
    activate_encoder(home, "v1")
    assert encoder_model_for(settings, home) == str(tuned)
    assert encoder_for(settings, home).model_name == str(tuned)
    # a model named in the settings wins over the tuned one
    named = Settings(home=tmp_path, encoder_model="some/other-model")
    assert encoder_for(named, home).model_name == "some/other-model"
    onnx = encoder_for(Settings(home=tmp_path, encoder_backend="onnx-int8"), home)
    assert isinstance(onnx, OnnxTextEncoder) and onnx.int8
    assert onnx.base_model_name == str(tuned) and onnx.onnx_dir == tuned / "onnx"
    fp32 = encoder_for(Settings(home=tmp_path, encoder_backend="onnx", encoder_model="m"), home)
    assert not fp32.int8 and fp32.onnx_dir == home.onnx / "m"  # type: ignore[attr-defined]


def test_queries_use_the_int8_export_when_there_is_one(tmp_path: Path) -> None:
    """Issue 15: with an int8 ONNX export of the configured model in the home, queries go
    through it (documents stay on the configured back-end); query_backend='same' opts out."""
    home = Home(tmp_path)
    assert encoder_for(Settings(home=tmp_path), home).query_encoder is None  # nothing exported
    export = onnx_dir_for(DEFAULT_MODEL, home)
    export.mkdir(parents=True)
    (export / "model_int8.onnx").write_bytes(b"")
    enc = encoder_for(Settings(home=tmp_path), home)
    assert enc.model_name == DEFAULT_MODEL and enc.query_encoder is not None
    assert enc.query_encoder.int8 and enc.query_encoder.onnx_dir == export
    assert encoder_for(Settings(home=tmp_path, query_backend="same"), home).query_encoder is None


def test_unknown_backend_names_the_options(tmp_path: Path) -> None:
    class _Raw:
        encoder_model, encoder_backend, encoder_batch_size = DEFAULT_MODEL, "tpu", 8

    with pytest.raises(ValueError, match="encoder_backend.*'torch', 'onnx', 'onnx-int8'.*'tpu'"):
        encoder_for(_Raw(), Home(tmp_path))  # type: ignore[arg-type]


class _FixedEncoder(TextEncoder):
    """Vectors from a table, so item_embeddings runs without a model."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        super().__init__(model_name="fixed")
        self.table = table
        self.calls = 0
        self._dim = 2

    def encode_documents(self, texts, progress=False):  # type: ignore[no-untyped-def]
        self.calls += 1
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


class _Catalog:
    def __init__(self, titles: list[str]) -> None:
        self.titles = titles

    def texts(self) -> list[str]:
        return [f"{t} full" for t in self.titles]

    @property
    def products(self) -> list[object]:
        return [type("P", (), {"title": t})() for t in self.titles]


def test_item_embeddings_from_a_shop_context(tmp_path: Path) -> None:
    table = {"a full": np.array([1.0, 0.0]), "b full": np.array([0.0, 1.0]),
             "a": np.array([0.6, 0.8]), "b": np.array([0.8, 0.6])}
    enc = _FixedEncoder(table)

    class _Ctx:
        paths = Home(tmp_path / "home")
        encoder = enc

        def catalog(self) -> _Catalog:
            return _Catalog(["b", "a"])

    vecs = item_embeddings(_Ctx())
    np.testing.assert_array_equal(vecs, [[0.0, 1.0], [1.0, 0.0]])  # catalogue order
    assert (_Ctx.paths.embeddings / "fixed" / "vectors.npy").is_file()
    item_embeddings(_Ctx())
    assert enc.calls == 1  # the second call is served from the cache
    np.testing.assert_allclose(item_embeddings(_Ctx(), text="title"), [[0.8, 0.6], [0.6, 0.8]])
    assert enc.calls == 2
    np.testing.assert_array_equal(item_embeddings(_Ctx()), vecs)  # titles did not prune the full texts
    assert enc.calls == 2


def _imports(path: Path) -> set[str]:
    """Modules a file imports, anywhere in it (inside functions too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_imports_point_one_way() -> None:
    text = {p.stem: _imports(p) for p in (SRC / "text").glob("*.py")}
    assert not {m for m in text["_encoder"] if m.startswith("shopsense.text")}
    assert not {m for m in text["_onnx"] if m.startswith(("shopsense.text._registry", "shopsense.text._cache"))}
    for pkg in ("text", "tune"):
        for p in (SRC / pkg).glob("*.py"):
            bad = {m for m in _imports(p) if m.split(".")[:2] in (
                ["shopsense", "engine"], ["shopsense", "eval"], ["shopsense", "serve"], ["shopsense", "cli"],
                ["shopsense", "datasets"], ["shopsense", "search"], ["shopsense", "recommend"],
                ["shopsense", "bundles"])}
            assert not bad, f"{pkg}/{p.name} imports {bad}"
            if pkg == "tune":
                assert not {m for m in _imports(p) if m.startswith("shopsense.text._")}, p.name


def test_text_and_tune_load_no_torch() -> None:
    code = ("import sys, shopsense.text, shopsense.tune; "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'onnxruntime', 'transformers') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
