"""On-disk embedding cache keyed by (model name, text hash), so rebuilding an index
only encodes products whose text changed."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsense.text._encoder import TextEncoder, model_slug, text_hash

if TYPE_CHECKING:
    from shopsense.context import ShopContext

__all__ = ["EmbeddingCache", "encode_cached", "item_embeddings", "item_texts"]

log = logging.getLogger(__name__)


class EmbeddingCache:
    """A folder per model holding ``keys.npy`` (text hashes) and ``vectors.npy``.

    Writes are atomic (temp file then rename) so a crash never leaves a torn
    cache. Stale entries are dropped on :meth:`put` when ``keep`` is given, so the
    cache tracks the catalogue instead of growing forever.
    """

    def __init__(self, root: str | Path, model_name: str) -> None:
        self.dir = Path(root) / model_slug(model_name)
        self.model_name = model_name
        self._keys: np.ndarray | None = None
        self._vecs: np.ndarray | None = None
        self._pos: dict[str, int] = {}

    def _load(self) -> None:
        if self._keys is not None:
            return
        kf, vf = self.dir / "keys.npy", self.dir / "vectors.npy"
        if kf.exists() and vf.exists():
            self._keys = np.load(kf, allow_pickle=False)
            self._vecs = np.load(vf, allow_pickle=False, mmap_mode="r")  # rows are copied out by get
        else:
            self._keys = np.zeros(0, dtype="<U32")
            self._vecs = None
        self._pos = {str(k): i for i, k in enumerate(self._keys)}

    def __len__(self) -> int:
        self._load()
        return len(self._pos)

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Vectors for ``keys`` (rows of missing keys are zero) and a found mask."""
        self._load()
        found = np.array([k in self._pos for k in keys], dtype=bool)
        if self._vecs is None:
            return None, found
        out = np.zeros((len(keys), self._vecs.shape[1]), dtype=np.float32)
        idx = [self._pos[k] for k in keys if k in self._pos]
        if idx:
            out[found] = self._vecs[np.asarray(idx)]
        return out, found

    def _aligned_path(self, keys: Sequence[str]) -> Path:
        import hashlib

        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        return self.dir / "aligned" / f"{digest}.npy"

    def mapped(self, keys: Sequence[str]) -> np.ndarray | None:
        """The vectors of ``keys``, in that order, mapped from the file :meth:`aligned` wrote for
        exactly these keys; ``None`` when there is none (nothing is read or copied here)."""
        path = self._aligned_path(keys)
        try:
            os.utime(path)  # in use: not the oldest
        except FileNotFoundError:
            return None
        return np.load(path, allow_pickle=False, mmap_mode="r").view(np.ndarray)  # np.memmap's slicing is slow

    def aligned(self, keys: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """``vectors`` (the rows of ``keys``, in that order) as a read-only memory-mapped file
        under ``aligned/``, named by a digest of the keys: every process that asks for the same
        texts in the same order (the workers of ``shopsense serve``) maps one copy in the page
        cache instead of each holding its own. Only the two most recent files are kept."""
        path = self._aligned_path(keys)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_npy(path, np.ascontiguousarray(vectors, dtype=np.float32))
            old = sorted((p for p in path.parent.glob("*.npy") if p != path), key=lambda p: p.stat().st_mtime)
            for stale in old[:-1]:
                stale.unlink(missing_ok=True)  # another process may have mapped it: its mapping stays valid
        mapped = self.mapped(keys)
        assert mapped is not None
        return mapped

    def put(self, keys: Sequence[str], vectors: np.ndarray, keep: Sequence[str] | None = None) -> None:
        """Add vectors; with ``keep``, also drop every key not in ``keep`` or ``keys``."""
        self._load()
        assert self._keys is not None
        old_keys, old_vecs = self._keys, self._vecs
        if keep is not None and old_vecs is not None and len(old_keys):
            wanted = set(keep) | set(keys)
            m = np.array([str(k) in wanted for k in old_keys], dtype=bool)
            old_keys, old_vecs = old_keys[m], old_vecs[m]
        new_keys = np.asarray(list(keys), dtype="<U32")
        if old_vecs is None or len(old_keys) == 0:
            all_keys, all_vecs = new_keys, np.asarray(vectors, dtype=np.float32)
        else:
            all_keys = np.concatenate([old_keys, new_keys])
            all_vecs = np.concatenate([old_vecs, np.asarray(vectors, dtype=np.float32)])
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, arr in (("keys.npy", all_keys), ("vectors.npy", all_vecs)):
            _save_npy(self.dir / name, arr)
        (self.dir / "manifest.json").write_text(json.dumps(
            {"format": "shopsense.embeddings/1", "model": self.model_name, "count": len(all_keys),
             "dim": int(all_vecs.shape[1]) if all_vecs.ndim == 2 else 0}))
        self._keys, self._vecs = all_keys, all_vecs
        self._pos = {str(k): i for i, k in enumerate(all_keys)}


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """``np.save`` through a temp file and a rename: a reader never sees half an array."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)


def encode_cached(encoder: TextEncoder, texts: Sequence[str], cache_root: str | Path,
                  progress: bool = False, prune: bool = True) -> tuple[np.ndarray, int]:
    """Embeddings of ``texts`` using and filling the cache; returns (vectors, n_encoded)."""
    cache = EmbeddingCache(cache_root, encoder.model_name)
    keys = [text_hash(t) for t in texts]
    if keys:
        ready = cache.mapped(keys)  # these very texts were embedded before: no copy out of the cache
        if ready is not None:
            return ready, 0
    vecs, found = cache.get(keys)
    missing = np.flatnonzero(~found)
    if len(missing):
        log.info("encoding %d of %d texts (%d cached)", len(missing), len(texts), int(found.sum()))
        uniq: dict[str, int] = {}
        todo: list[int] = []
        for i in missing:
            if keys[i] not in uniq:
                uniq[keys[i]] = len(todo)
                todo.append(int(i))
        new = encoder.encode_documents([texts[i] for i in todo], progress=progress)
        cache.put([keys[i] for i in todo], new, keep=keys if prune else None)
        if vecs is None:
            vecs = np.zeros((len(texts), new.shape[1]), dtype=np.float32)
        for i in missing:
            vecs[i] = new[uniq[keys[i]]]
    assert vecs is not None or len(texts) == 0
    if vecs is None:
        vecs = np.zeros((0, encoder.dim), dtype=np.float32)
    elif len(vecs):
        vecs = cache.aligned(keys, vecs)
    return vecs, len(missing)


def item_texts(catalog: Any, text: str = "full") -> list[str]:
    """The text each product is embedded from: ``"full"`` is ``Product.text()`` (title,
    brand, category path, start of the description); ``"title"`` is the title alone
    (cheaper to encode for catalogues with long descriptions)."""
    if text == "full":
        return list(catalog.texts())
    if text == "title":
        return [p.title for p in catalog.products]
    raise ValueError(f"The 'text' parameter of item_texts must be one of 'full', 'title'. Got {text!r} instead.")


def item_embeddings(ctx: ShopContext, progress: bool = False, text: str = "full") -> np.ndarray:
    """(n_items, dim) unit vectors of ``ctx.encoder``, aligned with ``ctx.catalog()`` order
    and cached under ``ctx.paths.embeddings``, so only changed products are re-encoded.
    ``text`` is what each product is embedded from (see :func:`item_texts`)."""
    catalog = ctx.catalog()
    vecs, _ = encode_cached(ctx.encoder, item_texts(catalog, text), ctx.paths.embeddings,
                            progress=progress, prune=text == "full")
    return vecs
