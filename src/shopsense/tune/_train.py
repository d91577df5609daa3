"""Contrastive fine-tuning of the sentence encoder on the shop's own pairs.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss`` (in-batch
negatives plus one hard negative per pair when available). The loop is written
here rather than with ``SentenceTransformerTrainer`` because the engine needs a
wall-clock budget, a progress callback and early stopping on a by-query validation
split, and the trainer would also pull in the ``datasets`` package.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import NotFittedError, check_param, require
from shopsense.home import Home, replaced_folder
from shopsense.text import ENCODER_MANIFEST, activate_encoder, encoder_dir, resolve_model
from shopsense.tune._pairs import PairSet

__all__ = ["EncoderTuner", "save_tuned_encoder"]

log = logging.getLogger(__name__)

MANIFEST = ENCODER_MANIFEST  # the registry (shopsense.text) reads it to tell a complete model
FORMAT = "shopsense.encoder/1"


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _no_duplicate_batches(anchors: Sequence[str], positives: np.ndarray, order: np.ndarray,
                          batch_size: int) -> list[np.ndarray]:
    """Batches in which no anchor and no positive repeats: a repeat would be scored as
    an in-batch negative of itself and teach the model the opposite of the truth.
    (Same idea as sentence-transformers' NoDuplicatesBatchSampler, over arrays.)"""
    batches: list[np.ndarray] = []
    pending = list(order.tolist())
    while pending:
        batch: list[int] = []
        seen_a: set[str] = set()
        seen_p: set[int] = set()
        rest: list[int] = []
        for i in pending:
            if len(batch) < batch_size and anchors[i] not in seen_a and int(positives[i]) not in seen_p:
                batch.append(i)
                seen_a.add(anchors[i])
                seen_p.add(int(positives[i]))
            else:
                rest.append(i)
        if len(batch) < 2:  # a lone pair has no in-batch negative; drop the leftovers
            break
        batches.append(np.array(batch, dtype=np.int64))
        pending = rest
    return batches


class EncoderTuner:
    """Fine-tune a sentence-transformers encoder on (anchor, positive product) pairs.

    Parameters
    ----------
    base_model:
        model name or path to start from (the engine's ``encoder_model``).
    method:
        ``"full"`` updates every weight; ``"lora"`` trains low-rank adapters (peft)
        and merges them into the weights at the end, so the saved model loads as a
        plain sentence-transformers model.
    epochs, batch_size, lr, warmup_frac:
        optimisation; batches never repeat an anchor or a positive.
    max_seconds:
        wall-clock budget; training stops (keeping the best checkpoint) when spent.
    eval_every, patience:
        validate every ``eval_every`` steps; stop after ``patience`` validations
        without improvement of validation MRR@10 (val queries rank their positives
        among the other val positives/negatives and ``val_pool`` random products).
    lora_r, lora_alpha:
        LoRA rank and scale.
    threads:
        torch threads (the engine shares the CPU, so 2 by default).

    Example
    -------
    >>> tuner = EncoderTuner(epochs=1, max_seconds=600).fit(train, docs, val)   # doctest: +SKIP
    >>> tuner.save("home/models/encoder/v1")                                 # doctest: +SKIP
    """

    def __init__(self, base_model: str = "all-MiniLM-L6-v2", method: str = "full", epochs: int = 1,
                 batch_size: int = 64, lr: float | None = None, warmup_frac: float = 0.1,
                 max_seconds: float | None = None, eval_every: int = 100, patience: int = 3,
                 lora_r: int = 16, lora_alpha: int = 32, scale: float = 20.0, threads: int = 2,
                 max_seq_length: int = 64, val_pool: int = 1000, seed: int = 0) -> None:
        check_param("method", method, method in ("full", "lora"), "'full' or 'lora'", "EncoderTuner")
        check_param("epochs", epochs, epochs >= 1, ">= 1", "EncoderTuner")
        check_param("batch_size", batch_size, batch_size >= 2, ">= 2", "EncoderTuner")
        self.base_model = base_model
        self.method = method
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.warmup_frac = warmup_frac
        self.max_seconds = max_seconds
        self.eval_every = eval_every
        self.patience = patience
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.scale = scale
        self.threads = threads
        self.max_seq_length = max_seq_length
        self.val_pool = val_pool
        self.seed = seed
        self.model_: Any = None
        self._peft: Any = None

    # -- helpers -----------------------------------------------------------------
    def _load(self) -> Any:
        torch = require("torch", "embed")
        st = require("sentence_transformers", "embed")
        path = resolve_model(self.base_model)
        if os.path.isdir(path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.manual_seed(self.seed)
        model = st.SentenceTransformer(path, device="cpu")
        # product titles and queries are short; a cap keeps batches cheap on a CPU
        model.max_seq_length = min(int(model.max_seq_length or 512), self.max_seq_length)
        if self.method == "lora":
            peft = require("peft", "tune")
            cfg = peft.LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=0.05,
                                  target_modules=["query", "key", "value", "dense"])
            # peft injects the adapters into the transformer in place; keep its wrapper to merge later
            self._peft = peft.get_peft_model(model[0].auto_model, cfg)
        return model

    def _features(self, model: Any, texts: Sequence[str]) -> dict[str, Any]:
        prep = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        return prep(list(texts))

    def _embed(self, model: Any, texts: Sequence[str], batch: int = 128) -> np.ndarray:
        import torch

        out = []
        model.eval()
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                f = self._features(model, texts[i : i + batch])
                e = model(f)["sentence_embedding"]
                out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)

    def _validate(self, model: Any, val: PairSet, docs: Sequence[str], pool: np.ndarray) -> float:
        """Validation MRR@10: each val query ranks a pool of its positives, the other
        val queries' positives and negatives, and random products."""
        qs = val.queries()
        qv = self._embed(model, qs)
        dv = self._embed(model, [docs[i] for i in pool.tolist()])
        pos_of = {int(r): j for j, r in enumerate(pool.tolist())}
        sims = qv @ dv.T
        rr = []
        for j, q in enumerate(qs):
            rel = {pos_of[r] for r in val.known.get(q, set()) if r in pos_of}
            rel |= {pos_of[int(r)] for a, r in zip(val.anchors, val.positives) if a == q and int(r) in pos_of}
            top = np.argsort(-sims[j])[:10]
            rr.append(next((1.0 / (k + 1) for k, t in enumerate(top.tolist()) if t in rel), 0.0))
        model.train()
        return float(np.mean(rr)) if rr else 0.0

    # -- public ------------------------------------------------------------------
    def fit(self, train: PairSet, docs: Sequence[str], val: PairSet | None = None,
            progress: Callable[[dict[str, Any]], None] | None = None) -> EncoderTuner:
        """Tune on ``train``; ``docs[row]`` is the text of catalogue row ``row``.

        ``val`` (pairs of queries absent from ``train``) drives early stopping and
        best-checkpoint selection; ``progress`` receives a dict after every step.
        """
        if len(train) < 2:
            raise ValueError(f"The 'train' parameter of EncoderTuner.fit needs at least 2 pairs. Got {len(train)}.")
        torch = require("torch", "embed")
        try:
            from sentence_transformers.sentence_transformer.losses import (
                MultipleNegativesRankingLoss,
            )
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.losses import MultipleNegativesRankingLoss
        if torch.get_num_threads() > self.threads:
            torch.set_num_threads(self.threads)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        model = self._load()
        loss_fn = MultipleNegativesRankingLoss(model, scale=self.scale)
        params = [p for p in model.parameters() if p.requires_grad]
        lr = self.lr or (5e-4 if self.method == "lora" else 5e-5)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        rng = np.random.default_rng(self.seed)
        per_epoch = max(1, len(train) // self.batch_size)
        total = per_epoch * self.epochs
        warm = max(1, int(self.warmup_frac * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))

        pool = np.zeros(0, dtype=np.int64)
        if val is not None and len(val):
            extra = rng.choice(len(docs), size=min(len(docs), self.val_pool), replace=False)
            negs = val.negatives[val.negatives >= 0]
            pool = np.unique(np.concatenate([val.positives, negs, extra]))
        best = -math.inf
        best_state: dict[str, Any] | None = None
        bad = 0
        step = 0
        history: list[dict[str, float]] = []
        stop_reason = "epochs done"
        if len(pool):
            best = self._validate(model, val, docs, pool)  # type: ignore[arg-type]
            history.append({"step": 0, "val_mrr@10": best})
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.train()
        done = False
        for epoch in range(self.epochs):
            batches = _no_duplicate_batches(train.anchors, train.positives, rng.permutation(len(train)),
                                            self.batch_size)
            for b in batches:
                a = [train.anchors[i] for i in b.tolist()]
                p = [docs[int(train.positives[i])] for i in b.tolist()]
                feats = [self._features(model, a), self._features(model, p)]
                nb = train.negatives[b]
                if (nb >= 0).all():
                    feats.append(self._features(model, [docs[int(r)] for r in nb.tolist()]))
                loss = loss_fn(feats, None)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                info: dict[str, Any] = {"step": step, "total": total, "epoch": epoch, "loss": float(loss.item()),
                                        "elapsed_s": time.perf_counter() - t0}
                if len(pool) and step % self.eval_every == 0:
                    score = self._validate(model, val, docs, pool)  # type: ignore[arg-type]
                    history.append({"step": step, "val_mrr@10": score})
                    info["val_mrr@10"] = score
                    log.info("step %d: val MRR@10 %.4f (best %.4f)", step, score, best)
                    if score > best:
                        best, bad = score, 0
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        bad += 1
                        if bad >= self.patience:
                            stop_reason, done = "early stopping", True
                if progress is not None:
                    progress(info)
                if self.max_seconds is not None and time.perf_counter() - t0 > self.max_seconds:
                    stop_reason, done = "time budget", True
                if done:
                    break
            if done:
                break
        if len(pool):
            final = self._validate(model, val, docs, pool)  # type: ignore[arg-type]
            history.append({"step": step, "val_mrr@10": final})
            if final > best:
                best, best_state = final, None
            if best_state is not None:
                model.load_state_dict(best_state)
        if self.method == "lora":
            self._peft.merge_and_unload()  # folds the adapters into the weights, in place
            self._peft = None
        model.eval()
        self.model_ = model
        self.history_ = history
        self.best_val_ = float(best) if len(pool) else None
        self.steps_ = step
        self.stop_reason_ = stop_reason
        self.train_pairs_ = len(train)
        self.wall_seconds_ = time.perf_counter() - t0
        self.cpu_seconds_ = _cpu_seconds() - c0
        log.info("tuned %s (%s) in %d steps, %.0f s wall, %.0f s CPU: %s", self.base_model, self.method, step,
                 self.wall_seconds_, self.cpu_seconds_, stop_reason)
        return self

    def manifest(self) -> dict[str, Any]:
        if self.model_ is None:
            raise NotFittedError("EncoderTuner is not fitted; call fit() first")
        import sentence_transformers

        return {
            "format": FORMAT, "base_model": self.base_model, "method": self.method, "epochs": self.epochs,
            "batch_size": self.batch_size, "lr": self.lr, "max_seq_length": self.max_seq_length,
            "lora_r": self.lora_r if self.method == "lora" else None, "steps": self.steps_,
            "stop_reason": self.stop_reason_, "best_val_mrr@10": self.best_val_, "history": self.history_,
            "train_pairs": self.train_pairs_, "wall_seconds": self.wall_seconds_,
            "cpu_seconds": self.cpu_seconds_, "sentence_transformers": sentence_transformers.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Save as a sentence-transformers folder plus ``shopsense_manifest.json``;
        written to a temp folder then renamed, so a crash never leaves half a model."""
        if self.model_ is None:
            raise NotFittedError("EncoderTuner is not fitted; call fit() first")
        return save_model_folder(self.model_, path, {**self.manifest(), **(extra or {})})


def save_model_folder(model: Any, path: str | Path, manifest: dict[str, Any]) -> Path:
    """Write a sentence-transformers model and its ``shopsense_manifest.json`` to ``path``
    through a temp folder and a rename, so a crash never leaves half a model (the tuned and
    the distilled encoders both)."""
    path = Path(path)
    with replaced_folder(path) as tmp:
        model.save(str(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path


def save_tuned_encoder(tuner: EncoderTuner, home: Home | str | Path, version: str | None = None,
                       activate: bool = True, extra: dict[str, Any] | None = None) -> Path:
    """Save under ``home.encoders/<version>/``; with ``activate``, point
    ``home.encoder_pointer`` at it so search and recommendations use it (the engine's
    encoder reads that pointer through :func:`shopsense.text.encoder_for`)."""
    version = version or time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    check_param("version", version, version.replace("-", "").replace("_", "").replace(".", "").isalnum(),
                "letters, digits, '-', '_', '.'", "save_tuned_encoder")
    path = tuner.save(encoder_dir(home, version), extra)
    if activate:
        activate_encoder(home, version)
    return path
