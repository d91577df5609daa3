"""Tests for the shared sentence encoder and its on-disk embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from shopsense.text import EmbeddingCache, TextEncoder, encode_cached, item_embeddings


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    return TextEncoder(threads=1)


def test_queries_and_documents_are_unit_float32(encoder: TextEncoder) -> None:
    q = encoder.encode_queries(["cordless drill", "red leather sofa"])
    d = encoder.encode_documents(["DEWALT 20-Volt Max Lithium-Ion Cordless Drill"])
    assert q.dtype == np.float32 and q.shape == (2, encoder.dim) and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert d.shape == (1, 384)
    # a drill query is closer to a drill than a sofa query is
    assert float(q[0] @ d[0]) > float(q[1] @ d[0])


def test_query_lru_cache_returns_same_vectors(encoder: TextEncoder) -> None:
    a = encoder.encode_queries(["samsung tv 55 inch"])
    assert "samsung tv 55 inch" in encoder._qcache
    b = encoder.encode_queries(["samsung tv 55 inch"])
    np.testing.assert_array_equal(a, b)
    assert encoder.encode_queries([]).shape == (0, 384)


class _CountingEncoder(TextEncoder):
    def __init__(self) -> None:
        super().__init__(threads=1)
        self.encoded = 0

    def encode_documents(self, texts, progress=False):  # type: ignore[no-untyped-def]
        self.encoded += len(texts)
        return super().encode_documents(texts, progress)


def test_cache_only_encodes_changed_texts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    enc = _CountingEncoder()
    texts = ["hammer drill", "garden hose 50 ft", "hammer drill"]
    v1, n1 = encode_cached(enc, texts, tmp_path)
    assert n1 == 3 and enc.encoded == 2  # duplicates encoded once
    v2, n2 = encode_cached(enc, texts, tmp_path)
    assert n2 == 0 and enc.encoded == 2  # cache hit avoids re-encoding
    np.testing.assert_array_equal(v1, v2)
    v3, n3 = encode_cached(enc, ["hammer drill", "patio umbrella"], tmp_path)
    assert n3 == 1 and enc.encoded == 3
    np.testing.assert_allclose(v3[0], v1[0], atol=1e-6)
    # pruned: the hose text is no longer cached
    assert len(EmbeddingCache(tmp_path, enc.model_name)) == 2


def test_the_same_texts_again_are_mapped_not_copied(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What each server worker asks at warm-up: the catalogue's texts, in order, already
    embedded. They come back mapped from one file (shared by every process), without reading
    the rows out of the cache again."""
    import mmap

    enc = _CountingEncoder()
    texts = ["hammer drill", "garden hose 50 ft", "hammer drill"]
    v1, _ = encode_cached(enc, texts, tmp_path)

    def no_copy(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("the rows were copied out of the cache again")

    monkeypatch.setattr(EmbeddingCache, "get", no_copy)
    v2, n2 = encode_cached(enc, texts, tmp_path)
    assert n2 == 0
    np.testing.assert_array_equal(v1, v2)
    base = v2
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, mmap.mmap)


def test_item_embeddings_align_with_catalog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    eng = Engine(tmp_path / "home")
    eng.add_products([{"id": "a", "title": "Cordless drill"}, {"id": "b", "title": "Leather sofa"}])
    vecs = item_embeddings(eng)
    assert vecs.shape == (2, 384)
    direct = eng.encoder.encode_documents(eng.catalog().texts())
    np.testing.assert_allclose(vecs, direct, atol=1e-5)
    assert (eng.home / "embeddings").is_dir()
    eng.close()
