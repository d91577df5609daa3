"""Text encoding shared by search, recommendations and bundles."""

from __future__ import annotations

from shopsense.text._cache import EmbeddingCache, encode_cached, item_embeddings, item_texts
from shopsense.text._encoder import TextEncoder, text_hash

__all__ = ["EmbeddingCache", "TextEncoder", "encode_cached", "item_embeddings", "item_texts", "text_hash"]
