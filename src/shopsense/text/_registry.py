"""Which encoder an engine home uses: the active tuned model, where ONNX exports
live, and the factory that builds the encoder the settings ask for.

Imports point one way inside ``shopsense.text``: this module imports ``_encoder``
and ``_onnx``; ``_onnx`` imports ``_encoder``; ``_encoder`` imports neither.
``shopsense.tune`` writes tuned models through these functions, so the layout
(``Home.encoders/<version>/`` and the ``current.json`` pointer) is known here only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from shopsense.config import DEFAULT_MODEL
from shopsense.errors import NotFoundError
from shopsense.home import Home
from shopsense.text._encoder import TextEncoder, model_slug
from shopsense.text._onnx import INT8, OnnxTextEncoder

if TYPE_CHECKING:
    from shopsense.config import Settings

__all__ = [
    "ENCODER_MANIFEST", "activate_encoder", "active_encoder_path", "encoder_dir", "encoder_for",
    "encoder_model_for", "onnx_dir_for",
]

log = logging.getLogger(__name__)

#: The file that marks a folder under ``Home.encoders`` as a complete tuned model.
ENCODER_MANIFEST = "shopsense_manifest.json"

BACKENDS = ("torch", "onnx", "onnx-int8")


def _as_home(paths: Home | str | os.PathLike[str]) -> Home:
    # a plain path still works for callers written before Home (CLI options, tests)
    return paths if isinstance(paths, Home) else Home(Path(paths))


def encoder_dir(paths: Home | str | os.PathLike[str], version: str) -> Path:
    """The folder of tuned encoder ``version``: ``paths.encoders / version``."""
    return _as_home(paths).encoders / version


def active_encoder_path(paths: Home | str | os.PathLike[str]) -> Path | None:
    """The active tuned encoder folder of an engine home, or ``None`` (no pointer, a
    broken pointer, or a version folder without its manifest)."""
    home = _as_home(paths)
    try:
        version = json.loads(home.encoder_pointer.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = home.encoders / str(version)
    return path if (path / ENCODER_MANIFEST).exists() else None


def activate_encoder(paths: Home | str | os.PathLike[str], version: str | None) -> None:
    """Make tuned encoder ``version`` the engine's encoder (``None`` goes back to the
    configured model). The pointer is replaced atomically, so a reader sees the old
    version or the new one, never a torn file."""
    home = _as_home(paths)
    pointer = home.encoder_pointer
    if version is None:
        pointer.unlink(missing_ok=True)
        return
    if not (home.encoders / version / ENCODER_MANIFEST).exists():
        raise NotFoundError("tuned encoder", version)
    fd, tmp = tempfile.mkstemp(dir=home.encoders, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": version}, fh)
        os.replace(tmp, pointer)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def onnx_dir_for(model: str | os.PathLike[str], paths: Home | str | os.PathLike[str]) -> Path:
    """Where the ONNX files of ``model`` live: ``<model>/onnx`` for a model folder
    inside the engine home (a tuned model), else ``paths.onnx / <slug of model>``."""
    home = _as_home(paths)
    p = Path(model)
    if p.is_dir() and home.root.resolve() in p.resolve().parents:
        return p / "onnx"
    return home.onnx / model_slug(str(model))


def encoder_model_for(settings: Settings, paths: Home | str | os.PathLike[str]) -> str:
    """The model the settings ask for: the home's active tuned encoder when
    ``encoder_model`` is left at its default, else ``encoder_model`` itself."""
    name = settings.encoder_model
    if name == DEFAULT_MODEL and (tuned := active_encoder_path(paths)) is not None:
        log.info("using the tuned encoder %s", tuned)
        return str(tuned)
    return name


def encoder_for(settings: Settings, paths: Home | str | os.PathLike[str]) -> TextEncoder:
    """The encoder of an engine home: :func:`encoder_model_for` on the back-end named by
    ``settings.encoder_backend`` (``"torch"``, ``"onnx"`` or ``"onnx-int8"``). Nothing
    is loaded until the first encode.

    Example
    -------
    >>> enc = encoder_for(Settings(home="shop"), Home("shop"))    # doctest: +SKIP
    >>> enc.encode_queries(["cordless drill"]).shape              # doctest: +SKIP
    (1, 384)
    """
    backend = getattr(settings, "encoder_backend", "torch")
    if backend not in BACKENDS:
        raise ValueError(f"The 'encoder_backend' setting must be one of {', '.join(map(repr, BACKENDS))}. "
                         f"Got {backend!r} instead.")
    name = encoder_model_for(settings, paths)
    if backend == "torch":
        enc: TextEncoder = TextEncoder(model_name=name, batch_size=settings.encoder_batch_size)
        int8 = onnx_dir_for(name, paths) / INT8
        if getattr(settings, "query_backend", "auto") == "auto" and int8.exists():
            # exported by `shopsense export-onnx`: queries are one short text each, where int8
            # ONNX Runtime is several times faster than PyTorch on a CPU (bench/tune.py)
            enc.query_encoder = OnnxTextEncoder(name, int8.parent, int8=True, batch_size=settings.encoder_batch_size)
    else:
        enc = OnnxTextEncoder(name, onnx_dir_for(name, paths), int8=backend == "onnx-int8",
                              batch_size=settings.encoder_batch_size)
    enc.query_cache_size = int(getattr(settings, "query_vector_cache", enc.query_cache_size))
    return enc
