"""Catalogue embeddings on Spark (pandas UDF) land in the home's embedding cache, where the
engine finds every product encoded; each Python worker loads the encoder once."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from shopsense import Engine
from shopsense.jobs import embed_catalog_spark
from shopsense.text import encode_cached, item_texts
from tests.jobs.conftest import DEMO

N = 200


def _home(root, n: int = N):  # type: ignore[no-untyped-def]
    lines = (DEMO / "office_products.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    (root / "products.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Engine(root / "home") as eng:
        eng.ingest_products(root / "products.jsonl")
    return root / "home"


def hash_encoder_factory(marks):  # type: ignore[no-untyped-def]
    """A factory of a tiny deterministic encoder (16-d unit vectors from a text hash) that
    leaves one file per load in ``marks``, named by process id; shipped to the workers."""

    def factory():  # type: ignore[no-untyped-def]
        import hashlib
        import os
        import uuid

        import numpy as np

        class HashEncoder:
            model_name = "hash-test-16"

            def encode_documents(self, texts, progress=False):  # type: ignore[no-untyped-def]
                raw = np.array([np.frombuffer(hashlib.blake2b(t.encode(), digest_size=16).digest(), np.uint8)
                                for t in texts], np.float32) - 127.5
                return raw / np.linalg.norm(raw, axis=1, keepdims=True)

        (marks / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
        return HashEncoder()

    return factory


def test_embed_fills_the_cache_loading_once_per_worker(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    home = _home(tmp_path)
    marks = tmp_path / "loads"
    marks.mkdir()
    factory = hash_encoder_factory(marks)
    lines: list[str] = []
    out = embed_catalog_spark(home, lines.append, spark=spark, partitions=6, encoder_factory=factory)
    with Engine(home) as eng:
        texts = item_texts(eng.catalog())
    assert out["texts"] == N and out["cached"] == 0 and out["encoded"] == len(set(texts))
    assert out["dim"] == 16 and out["model"] == "hash-test-16"
    enc = factory()
    vecs, encoded = encode_cached(enc, texts, home / "embeddings")
    assert encoded == 0  # every product was found in the engine's cache layout
    np.testing.assert_allclose(vecs, enc.encode_documents(texts), atol=1e-6)
    # six tasks on two cores: each Python worker loaded the encoder once (and the driver once
    # for the model name, once above)
    loads = [p.name.split("-")[0] for p in marks.iterdir()]
    workers = [pid for pid in loads if pid != str(os.getpid())]
    assert 1 <= len(workers) <= 2 and len(set(workers)) == len(workers), loads
    assert lines[0].startswith(f"{N} product texts, 0 cached, {N} to encode")
    again = embed_catalog_spark(home, spark=spark, encoder_factory=factory)
    assert again["encoded"] == 0 and again["cached"] == N


@pytest.mark.slow
def test_embed_with_the_sentence_encoder_matches_the_engine(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real encoder in the workers: torch loads in a Spark worker and in this process
    (about a minute on a busy 2-core machine, hence slow)."""
    pytest.importorskip("sentence_transformers", reason="needs the embed extra: pip install 'shopsense[embed]'")
    from shopsense.cli import app

    home = _home(tmp_path)
    out = embed_catalog_spark(home, spark=spark, partitions=1)
    with Engine(home) as eng:
        texts = item_texts(eng.catalog())
        assert out["encoded"] == len(set(texts)) and out["dim"] == 384 and out["model"] == eng.encoder.model_name
        vecs, encoded = encode_cached(eng.encoder, texts, eng.paths.embeddings)
        assert encoded == 0
        np.testing.assert_allclose(vecs[:8], eng.encoder.encode_documents(texts[:8]), atol=1e-5)
    res = CliRunner().invoke(app, ["jobs", "embed", "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert f"0 texts encoded, {N} already cached" in " ".join(res.output.split())
