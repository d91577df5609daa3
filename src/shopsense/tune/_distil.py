"""A smaller encoder by layer pruning plus distillation (issue 21).

The student is the teacher with some transformer layers removed (model surgery on the
sentence-transformers ``Transformer`` module, as in sentence-transformers' own
``model_distillation`` example and DistilBERT's layer initialisation); it is then
trained so that its normalised embedding of each shop text matches the teacher's.
The loss is the cosine distance ``1 - cos(student, teacher)``: both vectors are unit
length (the model ends in ``Normalize``), so this equals half the squared error
``||s - t||^2 / 2``, i.e. sentence-transformers' ``MSELoss`` up to a constant factor.

Texts are the shop's own product titles and (dev-side) queries; the teacher's vectors
can be passed in when they are already computed (the engine's embedding cache, a
benchmark's cached vectors), otherwise the teacher encodes them once. The loop is
written here for the same reasons as :mod:`shopsense.tune._train`: a wall-clock budget,
a progress callback, best-checkpoint selection on held-out texts, no ``datasets``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import NotFittedError, ValidationError, check_param, require
from shopsense.home import Home
from shopsense.text import (
    activate_encoder,
    encoder_dir,
    export_onnx,
    onnx_dir_for,
    resolve_model,
)
from shopsense.tune._train import _cpu_seconds, save_model_folder

__all__ = ["EncoderDistiller", "prune_layers", "save_distilled_encoder", "spread_layers"]

log = logging.getLogger(__name__)

FORMAT = "shopsense.encoder/1"


def spread_layers(total: int, keep: int) -> list[int]:
    """``keep`` layer indices spread evenly over ``total`` layers, first and last kept:
    6 -> 3 gives ``[0, 3, 5]``, 6 -> 2 gives ``[0, 5]``, 12 -> 4 gives ``[0, 4, 7, 11]``.
    The last layer is kept because the pooled output space is the teacher's last layer's;
    the first because it is closest to the embeddings."""
    check_param("layers", keep, 1 <= keep <= total, f"an int in [1, {total}]", "spread_layers")
    if keep == 1:
        return [total - 1]
    return sorted({math.floor(i * (total - 1) / (keep - 1) + 0.5) for i in range(keep)})


def prune_layers(model: Any, keep: Sequence[int]) -> Any:
    """Keep only transformer layers ``keep`` (indices into the model's layers, in order)
    of a sentence-transformers BERT-style model, in place; returns the model.

    The config's ``num_hidden_layers`` follows, so the saved folder loads as a plain
    sentence-transformers model with fewer layers."""
    torch = require("torch", "embed")
    auto = model[0].auto_model
    encoder = getattr(auto, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ValueError(f"prune_layers supports BERT-style encoders (encoder.layer); got {type(auto).__name__}")
    n = len(layers)
    keep = [int(i) for i in keep]
    if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= n:
        raise ValidationError(f"The 'keep' parameter of prune_layers must be increasing, distinct layer indices in "
                              f"[0, {n - 1}]. Got {keep} instead.", field="keep")
    kept = [layers[i] for i in keep]
    for j, layer in enumerate(kept):
        # transformers numbers layers for its key/value cache; renumber so they stay 0..k-1
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = j
    encoder.layer = torch.nn.ModuleList(kept)
    auto.config.num_hidden_layers = len(keep)
    return model


def _held_out(text: str, fraction: float) -> bool:
    # by a stable hash of the text, so the same text is always on the same side
    return int(hashlib.blake2b(text.encode(), digest_size=8).hexdigest(), 16) % 10_000 < fraction * 10_000


class EncoderDistiller:
    """Distil a sentence-transformers encoder into a student with fewer layers.

    Parameters
    ----------
    teacher:
        model name or folder (the home's tuned encoder, or ``all-MiniLM-L6-v2``).
    layers:
        transformer layers the student keeps, spread over the teacher's (:func:`spread_layers`);
        ``keep`` names them explicitly instead.
    epochs, batch_size, lr, warmup_frac:
        optimisation (AdamW, linear warm-up then linear decay to 0 at the end of the epochs or
        of ``max_seconds``, whichever comes first).
    max_seconds:
        wall-clock budget of the training loop (the teacher's vectors are computed before it
        starts); training stops (keeping the best checkpoint) when spent.
    val_fraction, eval_every:
        share of the texts held out (by hash) to measure mean cosine to the teacher every
        ``eval_every`` steps; the best checkpoint on them is kept.
    threads:
        torch threads (2 by default; the engine shares the CPU).
    max_seq_length:
        token cap for training and for the saved student (titles and queries are short).

    Example
    -------
    >>> d = EncoderDistiller("home/models/encoder/v1", layers=3, max_seconds=900)  # doctest: +SKIP
    >>> d.fit(titles + queries)                                                      # doctest: +SKIP
    >>> save_distilled_encoder(d, "home", version="v1-L3")                           # doctest: +SKIP
    """

    def __init__(self, teacher: str = "all-MiniLM-L6-v2", layers: int = 3, keep: Sequence[int] | None = None,
                 epochs: int = 1, batch_size: int = 64, lr: float = 1e-4, warmup_frac: float = 0.05,
                 max_seconds: float | None = None, val_fraction: float = 0.02, eval_every: int = 200,
                 threads: int = 2, max_seq_length: int = 64, seed: int = 0) -> None:
        check_param("layers", layers, layers >= 1, ">= 1", "EncoderDistiller")
        check_param("epochs", epochs, epochs >= 1, ">= 1", "EncoderDistiller")
        check_param("batch_size", batch_size, batch_size >= 2, ">= 2", "EncoderDistiller")
        check_param("lr", lr, lr > 0, "> 0", "EncoderDistiller")
        check_param("val_fraction", val_fraction, 0.0 <= val_fraction < 0.5, "in [0, 0.5)", "EncoderDistiller")
        check_param("eval_every", eval_every, eval_every >= 1, ">= 1", "EncoderDistiller")
        self.teacher = teacher
        self.layers = layers
        self.keep = keep
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.warmup_frac = warmup_frac
        self.max_seconds = max_seconds
        self.val_fraction = val_fraction
        self.eval_every = eval_every
        self.threads = threads
        self.max_seq_length = max_seq_length
        self.seed = seed
        self.model_: Any = None

    # -- helpers -----------------------------------------------------------------
    def _load_teacher(self) -> Any:
        torch = require("torch", "embed")
        st = require("sentence_transformers", "embed")
        path = resolve_model(self.teacher)
        if os.path.isdir(path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if torch.get_num_threads() > self.threads:
            torch.set_num_threads(self.threads)
        model = st.SentenceTransformer(path, device="cpu")
        model.max_seq_length = min(int(model.max_seq_length or 512), self.max_seq_length)
        if not any(type(m).__name__ == "Normalize" for m in model):
            raise ValueError(f"EncoderDistiller needs a teacher whose embeddings are normalised (a Normalize "
                             f"module); {self.teacher!r} has {[type(m).__name__ for m in model]}")
        return model

    @staticmethod
    def _features(model: Any, texts: Sequence[str]) -> dict[str, Any]:
        prep = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        return prep(list(texts))

    def _embed(self, model: Any, texts: Sequence[str], batch: int = 128,
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        import torch

        was_training = model.training
        model.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                e = model(self._features(model, texts[i : i + batch]))["sentence_embedding"]
                out.append(torch.nn.functional.normalize(e, dim=-1).float().numpy())
                if progress is not None:
                    progress(min(i + batch, len(texts)), len(texts))
        model.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)

    def teacher_vectors(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The teacher's unit vectors of ``texts`` (n, dim), float32."""
        return self._embed(self._load_teacher(), texts, progress=progress)

    # -- public ------------------------------------------------------------------
    def fit(self, texts: Sequence[str], teacher_vectors: np.ndarray | None = None,
            progress: Callable[[dict[str, Any]], None] | None = None) -> EncoderDistiller:
        """Train the student on ``texts`` (product titles, queries); ``teacher_vectors[i]``
        is the teacher's unit vector of ``texts[i]`` (computed here when not given).
        ``progress`` receives a dict after every step (and ``{"phase": "teacher", ...}``
        while the teacher encodes)."""
        torch = require("torch", "embed")
        texts = [str(t) for t in texts]
        if len(texts) < 4:
            raise ValidationError(f"The 'texts' parameter of EncoderDistiller.fit needs at least 4 texts. "
                                  f"Got {len(texts)}.", field="texts")
        t0, c0 = time.perf_counter(), _cpu_seconds()
        torch.manual_seed(self.seed)
        teacher = self._load_teacher()
        n_teacher = len(teacher[0].auto_model.encoder.layer)
        keep = list(self.keep) if self.keep is not None else spread_layers(n_teacher, self.layers)
        if teacher_vectors is None:
            tp = (lambda i, n: progress({"phase": "teacher", "done": i, "total": n})) if progress else None
            teacher_vectors = self._embed(teacher, texts, progress=tp)
        tv = np.asarray(teacher_vectors, dtype=np.float32)
        if tv.ndim != 2 or tv.shape[0] != len(texts):
            raise ValidationError(f"The 'teacher_vectors' parameter of EncoderDistiller.fit must have shape "
                                  f"({len(texts)}, dim). Got {tv.shape} instead.", field="teacher_vectors")
        norms = np.linalg.norm(tv, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            bad = int(np.argmax(np.abs(norms - 1.0)))
            raise ValidationError(f"The 'teacher_vectors' parameter of EncoderDistiller.fit must hold unit vectors; "
                                  f"row {bad} has norm {norms[bad]:.4f}.", field="teacher_vectors")
        t_train = time.perf_counter()  # the budget is for training: the teacher's vectors are not counted
        student = prune_layers(copy.deepcopy(teacher), keep)
        del teacher
        held = np.array([_held_out(t, self.val_fraction) for t in texts], dtype=bool) if self.val_fraction else \
            np.zeros(len(texts), dtype=bool)
        if held.all():
            held[:] = False
        tr_idx, va_idx = np.flatnonzero(~held), np.flatnonzero(held)
        va_texts = [texts[i] for i in va_idx.tolist()]
        va_t = tv[va_idx]

        def val_cos() -> float:
            if not len(va_idx):
                return math.nan
            return float((self._embed(student, va_texts) * va_t).sum(1).mean())

        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        per_epoch = max(1, math.ceil(len(tr_idx) / self.batch_size))
        total = per_epoch * self.epochs
        warm = max(1, int(self.warmup_frac * total))

        def lr_factor(step: int, elapsed: float) -> float:
            # linear warm-up, then linear decay to 0 over whichever budget runs out first (steps or
            # seconds), so a run cut by max_seconds still ends on a small learning rate
            if step < warm:
                return (step + 1) / warm
            done_frac = (step - warm) / max(1, total - warm)
            if self.max_seconds:
                done_frac = max(done_frac, elapsed / self.max_seconds)
            return max(0.0, 1.0 - done_frac)
        rng = np.random.default_rng(self.seed)
        history: list[dict[str, float]] = []
        before = val_cos()
        # the untouched pruned student is a candidate too, so training can never make it worse on held-out texts
        best, best_state = before, {k: v.detach().clone() for k, v in student.state_dict().items()}
        history.append({"step": 0, "val_cosine": before})
        step, stop_reason, done = 0, "epochs done", False
        student.train()
        for epoch in range(self.epochs):
            order = tr_idx[rng.permutation(len(tr_idx))]
            for s in range(0, len(order), self.batch_size):
                b = order[s : s + self.batch_size]
                if len(b) < 2:
                    continue
                emb = student(self._features(student, [texts[i] for i in b.tolist()]))["sentence_embedding"]
                target = torch.from_numpy(tv[b])
                loss = (1.0 - torch.nn.functional.cosine_similarity(emb, target, dim=-1)).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                for g in opt.param_groups:
                    g["lr"] = self.lr * lr_factor(step, time.perf_counter() - t_train)
                opt.step()
                step += 1
                info: dict[str, Any] = {"phase": "train", "step": step, "total": total, "epoch": epoch,
                                        "loss": float(loss.item()), "elapsed_s": time.perf_counter() - t0}
                last = s + self.batch_size >= len(order) and epoch == self.epochs - 1
                if self.max_seconds is not None and time.perf_counter() - t_train > self.max_seconds:
                    stop_reason, done = "time budget", True
                if len(va_idx) and (step % self.eval_every == 0 or done or last):
                    score = val_cos()
                    student.train()
                    history.append({"step": step, "val_cosine": score})
                    info["val_cosine"] = score
                    log.info("distil step %d/%d: loss %.4f, held-out cosine %.4f (best %.4f)", step, total,
                             info["loss"], score, best)
                    if score > best:
                        best = score
                        best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
                if progress is not None:
                    progress(info)
                if done:
                    break
            if done:
                break
        if len(va_idx):
            student.load_state_dict(best_state)
        student.eval()
        self.model_ = student
        self.keep_ = keep
        self.teacher_layers_ = n_teacher
        self.history_ = history
        self.val_cosine_before_ = None if math.isnan(before) else before
        self.val_cosine_ = None if math.isnan(best) else float(best)
        self.steps_ = step
        self.stop_reason_ = stop_reason
        self.train_texts_ = len(tr_idx)
        self.val_texts_ = len(va_idx)
        self.wall_seconds_ = time.perf_counter() - t0
        self.cpu_seconds_ = _cpu_seconds() - c0
        log.info("distilled %s to layers %s in %d steps, %.0f s wall, %.0f s CPU (%s); held-out cosine %.4f -> %.4f",
                 self.teacher, keep, step, self.wall_seconds_, self.cpu_seconds_, stop_reason, before, best)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The student's unit vectors of ``texts`` (n, dim), float32."""
        if self.model_ is None:
            raise NotFittedError("EncoderDistiller is not fitted; call fit() first")
        return self._embed(self.model_, [str(t) for t in texts])

    def manifest(self) -> dict[str, Any]:
        """What was distilled and how (saved beside the model as ``shopsense_manifest.json``)."""
        if self.model_ is None:
            raise NotFittedError("EncoderDistiller is not fitted; call fit() first")
        import sentence_transformers

        return {
            "format": FORMAT, "method": "distil", "base_model": self.teacher, "teacher": self.teacher,
            "teacher_layers": self.teacher_layers_, "layers_kept": self.keep_, "loss": "cosine distance",
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
            "max_seq_length": self.max_seq_length, "steps": self.steps_, "stop_reason": self.stop_reason_,
            "val_cosine_before": self.val_cosine_before_, "val_cosine": self.val_cosine_, "history": self.history_,
            "train_texts": self.train_texts_, "val_texts": self.val_texts_, "wall_seconds": self.wall_seconds_,
            "cpu_seconds": self.cpu_seconds_, "sentence_transformers": sentence_transformers.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Save as a sentence-transformers folder plus ``shopsense_manifest.json``, through
        a temp folder and a rename (a crash never leaves half a model)."""
        if self.model_ is None:
            raise NotFittedError("EncoderDistiller is not fitted; call fit() first")
        return save_model_folder(self.model_, path, {**self.manifest(), **(extra or {})})


def save_distilled_encoder(distiller: EncoderDistiller, home: Home | str | Path, version: str | None = None,
                           activate: bool = True, onnx: bool = True, extra: dict[str, Any] | None = None) -> Path:
    """Save the student as encoder ``version`` under ``home.encoders``; with ``onnx``, also
    export it (fp32 and int8) where ``encoder_backend = "onnx" | "onnx-int8"`` looks for
    it (``<version>/onnx``); with ``activate``, make it the home's encoder."""
    version = version or time.strftime("v%Y%m%d-%H%M%S-distil", time.gmtime())
    check_param("version", version, version.replace("-", "").replace("_", "").replace(".", "").isalnum(),
                "letters, digits, '-', '_', '.'", "save_distilled_encoder")
    path = distiller.save(encoder_dir(home, version), extra)
    if onnx:
        export_onnx(str(path), onnx_dir_for(str(path), home), quantize=True)
    if activate:
        activate_encoder(home, version)
    return path
