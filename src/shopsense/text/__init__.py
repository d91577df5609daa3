"""Text encoding shared by search, recommendations and bundles: the encoder and its
ONNX back-end, the embedding cache, and the registry that says which encoder an
engine home uses (its active tuned model, its ONNX exports)."""

from __future__ import annotations

from shopsense.text._cache import EmbeddingCache, encode_cached, item_embeddings, item_texts
from shopsense.text._encoder import TextEncoder, resolve_model, text_hash
from shopsense.text._onnx import (
    SPIN_ENV,
    OnnxTextEncoder,
    export_onnx,
    ort_threads,
    session_options,
)
from shopsense.text._registry import (
    ENCODER_MANIFEST,
    activate_encoder,
    active_encoder_path,
    encoder_dir,
    encoder_for,
    encoder_model_for,
    onnx_dir_for,
)
from shopsense.text._tokenize import FastTokenizer, load_tokenizer

__all__ = [
    "ENCODER_MANIFEST", "SPIN_ENV", "EmbeddingCache", "FastTokenizer", "OnnxTextEncoder", "TextEncoder", "activate_encoder",
    "active_encoder_path", "encode_cached", "encoder_dir", "encoder_for", "encoder_model_for", "export_onnx",
    "item_embeddings", "item_texts", "load_tokenizer", "onnx_dir_for", "ort_threads", "resolve_model", "session_options", "text_hash",
]
