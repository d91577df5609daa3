"""ONNX Runtime back-end for the sentence encoder, fp32 or dynamically quantised int8.

The transformer is exported with ``torch.onnx.export``; tokenisation (the model's
own fast tokenizer), mean pooling over the attention mask and L2 normalisation are
done here in NumPy, exactly as sentence-transformers' ``Pooling(mean)`` +
``Normalize`` modules do, so vectors agree with the PyTorch encoder (cosine > 0.99
for fp32). Settings pick it with ``encoder_backend = "onnx" | "onnx-int8"``; where
the export lives and which model is exported is the registry's business (``_registry``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import require
from shopsense.home import replaced_folder
from shopsense.text._encoder import TextEncoder, resolve_model
from shopsense.text._tokenize import load_tokenizer

__all__ = ["OnnxTextEncoder", "export_onnx"]

log = logging.getLogger(__name__)

FP32 = "model.onnx"
INT8 = "model_int8.onnx"


def export_onnx(model_name: str, out_dir: str | Path, quantize: bool = True, opset: int = 17) -> Path:
    """Export ``model_name`` (name or folder) to ``out_dir/model.onnx`` (+ ``model_int8.onnx``).

    Written to a temp folder and renamed, so a reader never sees half an export.
    Returns ``out_dir``.
    """
    torch = require("torch", "embed")
    st = require("sentence_transformers", "embed")
    require("onnx", "tune")
    path = resolve_model(model_name)
    if os.path.isdir(path):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = st.SentenceTransformer(path, device="cpu")
    modes = [type(m).__name__ for m in model]
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode", None) or (
        "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else None)
    if modes[:1] != ["Transformer"] or type(pooling).__name__ != "Pooling" or mode not in ("mean", None):
        raise ValueError(f"export_onnx supports Transformer + mean Pooling (+ Normalize) models; got {modes}")
    auto = model[0].auto_model.eval()
    tok = model.tokenizer
    out_dir = Path(out_dir)
    with replaced_folder(out_dir) as tmp:
        enc = tok(["a cordless drill", "deck screws"], padding=True, return_tensors="pt")
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

        class _Wrap(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, *args: Any) -> Any:
                return self.m(**dict(zip(names, args))).last_hidden_state

        dyn = {n: {0: "batch", 1: "seq"} for n in names}
        dyn["last_hidden_state"] = {0: "batch", 1: "seq"}
        with torch.inference_mode():
            torch.onnx.export(_Wrap(auto), tuple(enc[n] for n in names), str(tmp / FP32), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=dyn, opset_version=opset,
                              dynamo=False)
        tok.save_pretrained(str(tmp / "tokenizer"))
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(tmp / FP32), str(tmp / INT8), weight_type=QuantType.QInt8, per_channel=True)
        normalize = any(type(m).__name__ == "Normalize" for m in model)
        (tmp / "manifest.json").write_text(json.dumps({
            "format": "shopsense.onnx-encoder/1", "model": model_name, "inputs": names,
            "max_seq_length": int(model.max_seq_length), "pooling": "mean", "normalize": normalize,
            "dim": int(auto.config.hidden_size), "int8": bool(quantize), "opset": opset,
        }, indent=2))
    log.info("exported %s to %s", model_name, out_dir)
    return out_dir


def ort_threads(explicit: int | None = None) -> int:
    """ONNX Runtime's intra-op threads: ``explicit`` when given; else the same rule as the
    torch back-end (never more than 2 on a shared CPU) and never more than a server
    worker's share, ``OMP_NUM_THREADS`` (``shopsense serve --workers N`` sets it per worker):
    ORT's own pool ignores that variable, and 2 workers x 2 spinning threads on 2 cores
    served searches slower than 1 worker did (bench/serve.py)."""
    if explicit:
        return int(explicit)
    share = os.environ.get("OMP_NUM_THREADS", "").strip()
    cap = int(share) if share.isdigit() and int(share) > 0 else 2
    return max(1, min(cap, os.cpu_count() or 1))


#: set to ``0`` to stop ONNX Runtime's intra-op threads from spin-waiting for work between
#: operators. ``shopsense serve`` sets it: there several requests encode at once, and each
#: session's spinning threads took the cores the others needed (mixed load, 1 worker, 8 /
#: 32 clients: 153 / 105 req/s spinning, 222 / 159 not; 1.88 cores busy at 1 client
#: against 1.00). A lone caller keeps spinning: a query encodes in 2.0 ms instead of 2.7
#: and a batch of titles 3-6% faster (Home Depot, int8, 2 threads).
SPIN_ENV = "SHOPSENSE_ONNX_SPIN"


def ort_spin() -> bool:
    """Whether ONNX Runtime's threads spin-wait (see :data:`SPIN_ENV`)."""
    return os.environ.get(SPIN_ENV, "1").strip() not in ("0", "false", "no")


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime's options for an encoder session: :func:`ort_threads` intra-op threads,
    one inter-op thread, spin-waiting as :func:`ort_spin` says."""
    ort = require("onnxruntime", "tune")
    so = ort.SessionOptions()
    so.intra_op_num_threads = ort_threads(threads)
    so.inter_op_num_threads = 1
    if not ort_spin():
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class _OnnxModel:
    """What callers of ``TextEncoder.model`` may touch, shaped like a SentenceTransformer
    (``.tokenizer``, ``.max_seq_length``), plus the ONNX Runtime session."""

    def __init__(self, session: Any, tokenizer: Any, max_seq_length: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length


class OnnxTextEncoder(TextEncoder):
    """The :class:`TextEncoder` interface on ONNX Runtime (same query cache).

    ``onnx_dir`` holds the export; when it is missing the model is exported there on
    first use. ``int8`` picks the quantised graph.
    """

    def __init__(self, model_name: str, onnx_dir: str | Path, int8: bool = True, batch_size: int = 64,
                 threads: int | None = None, query_cache_size: int = 1024) -> None:
        super().__init__(model_name=model_name, batch_size=batch_size, threads=threads,
                         query_cache_size=query_cache_size)
        self.onnx_dir = Path(onnx_dir)
        self.int8 = int8
        #: int8 graphs quantise activations dynamically, with one scale over the whole padded
        #: batch: a text's vector depends on the texts encoded with it (a query alone vs in a
        #: batch of 128: cosine 0.994-0.997 on Home Depot, 3-layer student); fp32 does not
        self.batch_dependent = bool(int8)
        # a distinct name keeps the embedding cache of each back-end apart
        self.model_name = f"{model_name}+onnx{'-int8' if int8 else ''}"
        self.base_model_name = model_name
        self._session: Any = None
        self._identity = ""  # set with the session (identity())
        self._tok: Any = None
        self._meta: dict[str, Any] = {}
        self._olock = threading.Lock()

    def _ensure(self) -> None:
        with self._olock:
            if self._session is not None:
                return
            ort = require("onnxruntime", "tune")
            graph = self.onnx_dir / (INT8 if self.int8 else FP32)
            if not graph.exists():
                log.info("no ONNX export at %s; exporting %s now", self.onnx_dir, self.base_model_name)
                export_onnx(self.base_model_name, self.onnx_dir, quantize=True)
            self._meta = json.loads((self.onnx_dir / "manifest.json").read_text())
            # the tokenizers library alone: transformers' AutoTokenizer would import PyTorch
            # into every serving worker (text/_tokenize.py says what that costs)
            self._tok = load_tokenizer(self.onnx_dir / "tokenizer", int(self._meta["max_seq_length"]))
            so = session_options(self.threads)
            self._session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
            self._dim = int(self._meta["dim"])
            # the graph this session runs, as loaded: a later re-export into the same folder is
            # another encoder (read once here, not per query)
            self._identity = f"onnx:{graph.resolve()}:{graph.stat().st_mtime_ns}"

    def identity(self) -> str:
        self._ensure()
        return self._identity

    @property
    def model(self) -> Any:
        self._ensure()
        return _OnnxModel(self._session, self._tok, int(self._meta["max_seq_length"]))

    @property
    def dim(self) -> int:
        self._ensure()
        assert self._dim is not None
        return self._dim

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        self._ensure()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        names = self._meta["inputs"]
        # sort by length so each batch pads little (sentence-transformers does the same)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tok([texts[i] for i in idx])
            feed = {n: enc[n] for n in names}
            hidden = self._session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            # sentence-transformers Pooling(mean): sum over unmasked tokens / clamp(count, 1e-9)
            vec = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            if self._meta.get("normalize", True):
                # torch.nn.functional.normalize: x / max(||x||, 1e-12)
                vec = vec / np.clip(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12, None)
            out[idx] = vec
        return out
