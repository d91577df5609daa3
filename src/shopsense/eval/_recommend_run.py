"""The recommendation evaluation run shared by ``bench/recommend.py`` and
``shopsense eval recommend``: one implementation of the protocol.

Leave-one-out (S3-Rec/P5/TIGER): last item = test, second-to-last = validation,
rank ALL items with the history excluded, Recall@k / NDCG@k per user, averaged.
Generators for the ranker are fitted on ``s[:-2]`` and the LambdaMART ranker
learns from the validation item; for test the cheap generators are refitted on
``s[:-1]`` (these refits are also the popularity / EASE / ALS peers reported);
SASRec keeps its ``s[:-2]`` weights and reads ``s[:-1]`` (the original SASRec
protocol). Cold start: a share of the items is hidden from all training and
histories, and the single generators are scored on the users whose test item
is hidden.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from shopsense.errors import ValidationError, check_param
from shopsense.eval._progress import Phases
from shopsense.eval._recommend import evaluate_ranked, loo_split, rank_model
from shopsense.metrics import loo_metrics

__all__ = [
    "GENERATORS",
    "STACK",
    "SYSTEMS",
    "PeakRSS",
    "RecommendRun",
    "item_vectors",
    "latency",
    "run_recommend",
]

log = logging.getLogger(__name__)

#: every system ``run_recommend`` knows, in the order they run
SYSTEMS = ("popularity", "ease", "itemknn", "als", "content", "transition", "sasrec", "stack")
#: the single candidate generators (everything but the stack)
GENERATORS = ("popularity", "ease", "itemknn", "als", "content", "transition", "sasrec")
#: the name the full stack's results carry
STACK = "full stack (LambdaMART)"


class PeakRSS:
    """Wall time and peak resident memory growth while the block runs (numpy, LAPACK
    and torch alike): a thread polls ``/proc/self/statm``, where it exists."""

    def __enter__(self) -> Self:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        self.t0 = time.perf_counter()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * 4096
        except OSError:  # not Linux: time only
            return 0

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.mb = (self.peak - self.base) / 2**20


def latency(model: Any, histories: Sequence[np.ndarray], n: int = 300, seed: int = 0, k: int = 10) -> dict[str, float]:
    """p50 / p99 milliseconds of one ``recommend`` call for ``n`` random single histories:
    wall time, and the process CPU time of the same calls (what a call costs when other
    jobs share the cores and inflate the wall time)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(histories), size=min(n, len(histories)), replace=False)
    model.recommend([histories[idx[0]]], k)  # warm-up
    wall, cpu = [], []
    for i in idx:
        c, t = time.process_time(), time.perf_counter()
        model.recommend([histories[i]], k)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"latency_p50_ms": float(np.percentile(wall, 50)), "latency_p99_ms": float(np.percentile(wall, 99)),
            "latency_cpu_p50_ms": float(np.percentile(cpu, 50)), "latency_cpu_p99_ms": float(np.percentile(cpu, 99))}


def item_vectors(texts: Sequence[str], cache: str | Path, encoder: Any = None) -> np.ndarray:
    """Unit text vectors of the items, cached on disk by (model, text hash)."""
    from shopsense.text import TextEncoder, encode_cached

    vecs, n = encode_cached(encoder or TextEncoder(), list(texts), cache)
    log.info("encoded %d of %d item texts", n, len(texts))
    return vecs


def encode_item_texts(texts: Sequence[str], cache: str | Path | None, threads: int, phases: Phases) -> np.ndarray:
    """Item vectors from the configured encoder (``Settings().encoder_model``), cached under
    ``cache`` (default ``~/.cache/shopsense/eval-embeddings``), as one phase of ``phases``:
    what ``shopsense eval recommend`` and ``eval baskets`` do with ``--items``."""
    from shopsense.config import Settings
    from shopsense.text import TextEncoder

    enc = TextEncoder(model_name=Settings().encoder_model, threads=threads)
    root = Path(cache) if cache else Path.home() / ".cache" / "shopsense" / "eval-embeddings"
    with phases.phase(f"encode {len(texts):,} item texts (cached in {root})"):
        return item_vectors(texts, root, enc)


@dataclass
class RecommendRun:
    """Mean figures per system, per-user scores (for bootstrap comparisons) and run facts."""

    results: dict[str, dict[str, float]]
    per_user: dict[str, dict[str, dict[str, float]]]
    info: dict[str, Any] = field(default_factory=dict)


def _make(kind: str, *, ease_l2: float, threads: int, seed: int, transition: dict[str, Any] | None = None) -> Any:
    from shopsense.recommend import ALS, EASE, ContentRecommender, ItemKNN, Popularity, Transition

    if kind == "popularity":
        return Popularity()
    if kind == "ease":
        return EASE(l2=ease_l2)
    if kind == "itemknn":
        return ItemKNN(neighbors=200)
    if kind == "als":
        return ALS(factors=128, regularization=0.05, alpha=40.0, iterations=15, num_threads=threads,
                   random_state=seed)
    if kind == "content":
        return ContentRecommender(recency_half_life=3.0)
    if kind == "transition":  # hyperparameters chosen on the validation position (run_recommend)
        return Transition(**(transition or {}))
    raise ValueError(kind)


def run_recommend(
    sequences: Sequence[np.ndarray], n_items: int, *, user_ids: Sequence[str] | None = None,
    systems: Sequence[str] = SYSTEMS, item_vectors: np.ndarray | None = None,
    categories: np.ndarray | None = None, cold_start_fraction: float = 0.0, seed: int = 0, k: int = 10,
    ease_l2: float = 250.0, candidates: int = 50, ranker_users: int = 10000, sasrec_seconds: float = 600.0,
    sasrec_lr: float = 2e-3, sasrec_dropout: float = 0.3, sasrec_epochs: int = 200, sasrec_negatives: int = 0,
    sasrec_patience: int = 3, threads: int = 1, latency_calls: int = 300, batch_size: int = 1024,
    stack_without: Sequence[str] = (),
    phases: Phases | None = None,
) -> RecommendRun:
    """Fit and score every requested system on the leave-one-out split of ``sequences``.

    ``systems`` (any of :data:`SYSTEMS`; generators run in the order given, which is
    also the stack's feature order) - ``content`` needs ``item_vectors`` and is left
    out (and said so in ``info``) without them; ``stack`` stacks every generator run.
    ``user_ids`` name the per-user scores (default: the position in ``sequences``).
    Users with fewer than 3 items are left out of the protocol and counted.
    ``transition`` has its window, decay and history reading chosen on the validation
    position (``s[-2]``, models fitted on ``s[:-2]``; the grid and the choice in ``info``).
    ``stack_without`` names generators to leave out of a second, third... stack trained and
    scored in the same run (``"<STACK> without <name>"``): what each generator adds.
    ``sasrec_negatives``: 0 trains SASRec with the full softmax, N > 0 with sampled softmax
    over N uniform negatives (eSASRec's loss); either stops after ``sasrec_patience``
    validations (every 2 epochs) without a better NDCG@10, or at ``sasrec_seconds``.

    Example
    -------
    >>> run = run_recommend(seqs, n_items, systems=["popularity", "ease"])  # doctest: +SKIP
    >>> run.results["ease"]["ndcg@10"]  # doctest: +SKIP
    """
    from shopsense.recommend import (
        ContentRecommender,
        Interactions,
        ItemSide,
        RankingStack,
        SASRec,
        tune_transition,
    )

    phases = phases or Phases()
    systems = list(dict.fromkeys(systems))
    unknown = [s for s in systems if s not in SYSTEMS]
    check_param("systems", unknown or systems, not unknown and bool(systems), f"a non-empty subset of {list(SYSTEMS)}",
                "run_recommend")
    check_param("cold_start_fraction", cold_start_fraction, 0.0 <= cold_start_fraction < 1.0, "a float in [0, 1)",
                "run_recommend")
    check_param("k", k, isinstance(k, int) and k >= 1, "an int >= 1", "run_recommend")
    if item_vectors is not None and len(item_vectors) < n_items:
        raise ValidationError(f"item_vectors has {len(item_vectors)} rows for {n_items} items", field="item_vectors")
    info: dict[str, Any] = {"skipped_systems": {}}
    if "content" in systems and item_vectors is None:
        systems.remove("content")
        info["skipped_systems"]["content"] = "needs item text (--items)"
    gen_kinds = [s for s in systems if s in GENERATORS and s != "sasrec"]
    use_sasrec, use_stack = "sasrec" in systems, "stack" in systems
    if use_stack and not gen_kinds and not use_sasrec:
        raise ValidationError("the stack needs at least one generator besides itself", field="systems")
    ablate = list(dict.fromkeys(stack_without))
    bad = [a for a in ablate if a not in gen_kinds and not (a == "sasrec" and use_sasrec)]
    check_param("stack_without", ablate, not bad and (use_stack or not ablate),
                "generators run in the same call, with 'stack' among the systems", "run_recommend")

    keep = [i for i, s in enumerate(sequences) if len(s) >= 3]
    uids = [str(user_ids[i]) if user_ids is not None else str(i) for i in keep]
    split = loo_split(sequences, n_items)
    info.update(users=len(keep), items=int(n_items), users_too_short=len(sequences) - len(keep),
                interactions=int(sum(len(s) for s in sequences)))
    if not keep:
        raise ValidationError("no user has the 3 items leave-one-out needs (train, validation, test).",
                              field="sequences")
    train = Interactions.from_sequences(split.train, n_items)
    full = Interactions.from_sequences(split.test_hist, n_items)
    vecs = item_vectors
    res: dict[str, dict[str, float]] = {}
    per_user: dict[str, dict[str, dict[str, float]]] = {}
    phases.echo(f"{len(keep):,} users ({info['users_too_short']:,} with < 3 items left out), {n_items:,} items")

    def fit(m: Any, data: Any) -> Any:
        if isinstance(m, ContentRecommender):
            return m.fit(data, item_vectors=vecs)
        return m.fit(data)

    def score(name: str, model: Any, batch: int = batch_size) -> dict[str, float]:
        t0 = time.perf_counter()
        with phases.phase(f"{name}: rank all items", total=len(split.test_hist)) as upd:
            ranked = rank_model(model, split.test_hist, k, batch, progress=upd)
        r = evaluate_ranked(ranked, split.test_target, n_items, k)
        r["eval_seconds"] = time.perf_counter() - t0
        m = loo_metrics(ranked, split.test_target, k)
        per_user[name] = {key: dict(zip(uids, m[key].tolist())) for key in (f"recall@{k}", f"ndcg@{k}")}
        return r

    def lat(model: Any) -> dict[str, float]:
        return latency(model, split.test_hist, n=latency_calls, seed=seed, k=k) if latency_calls > 0 else {}

    trans_params: dict[str, Any] | None = None
    if "transition" in gen_kinds:  # chosen on s[-2] with counts from s[:-2]; the test item is never read
        with phases.phase("transition: choose window/decay/history on the validation position s[-2]"):
            trans_params, table = tune_transition(train, split.valid_hist, split.valid_target, k=k, seed=seed)
        info["transition_params"] = trans_params
        info["transition_validation"] = sorted(table, key=lambda r: -r[f"ndcg@{k}"])[:5]
        info["transition_grid_size"] = len(table)
        phases.echo(f"  transition: chose {trans_params} (validation NDCG@{k} "
                    f"{info['transition_validation'][0][f'ndcg@{k}']:.4f}, {len(table)} settings)")

    def make(kind: str) -> Any:
        return _make(kind, ease_l2=ease_l2, threads=threads, seed=seed, transition=trans_params)

    gens_val: dict[str, Any] = {}
    gens_test: dict[str, Any] = {}
    for kind in gen_kinds:
        def mk(kind: str = kind) -> Any:
            return make(kind)

        if use_stack:  # the ranker learns from generators that have not seen the validation item
            with phases.phase(f"{kind}: fit on s[:-2] (for the stack)"):
                gens_val[kind] = fit(mk(), train)
        with phases.phase(f"{kind}: fit on s[:-1]"), PeakRSS() as pm:
            gens_test[kind] = fit(mk(), full)
        r = score(kind, gens_test[kind])
        r.update(train_seconds=pm.seconds, train_peak_mb=pm.mb)
        r.update(lat(gens_test[kind]))
        res[kind] = r
        phases.echo(f"  {kind:12s} R@{k} {r[f'recall@{k}']:.4f} N@{k} {r[f'ndcg@{k}']:.4f} fit {pm.seconds:.0f}s "
                    f"+{pm.mb:.0f} MB")
    if use_sasrec:
        sas = SASRec(hidden=64, layers=2, heads=2, max_len=50, dropout=sasrec_dropout, lr=sasrec_lr,
                     epochs=sasrec_epochs, max_seconds=sasrec_seconds, patience=sasrec_patience, eval_every=2,
                     num_threads=threads, seed=seed, text_init=vecs is not None, negatives=sasrec_negatives)
        with phases.phase(f"sasrec: train (<= {sasrec_seconds:.0f}s)", total=sasrec_epochs) as upd, PeakRSS() as pm:
            sas.fit(train, validation=(split.valid_hist, split.valid_target), item_vectors=vecs,
                    progress=lambda e, i: upd(e))
        r = score("sasrec", sas)
        best = max((h for h in sas.history_ if "val_ndcg@10" in h), key=lambda h: h["val_ndcg@10"], default={})
        r.update(train_seconds=pm.seconds, train_peak_mb=pm.mb, epochs=len(sas.history_),
                 best_epoch=best.get("epoch"), validation_ndcg_best=best.get("val_ndcg@10"),
                 stopped=sas.stopped_,
                 loss="full softmax" if not sasrec_negatives else f"sampled softmax, {sasrec_negatives} negatives")
        r.update(lat(sas))
        res["sasrec"] = r
        gens_val["sasrec"] = gens_test["sasrec"] = sas
        phases.echo(f"  sasrec       R@{k} {r[f'recall@{k}']:.4f} N@{k} {r[f'ndcg@{k}']:.4f} "
                    f"({len(sas.history_)} epochs, {pm.seconds:.0f}s, {sas.stopped_})")

    if use_stack:
        last = next((g for g in gen_kinds if g in ("ease", "itemknn")), None)
        pop = np.bincount(np.concatenate(split.train), minlength=n_items).astype(np.float32)
        pop_test = np.bincount(np.concatenate(split.test_hist), minlength=n_items).astype(np.float32)
        for left_out in [None, *ablate]:
            name = STACK if left_out is None else f"{STACK} without {left_out}"
            val = {g: m for g, m in gens_val.items() if g != left_out}
            lasts = [last] if last and last != left_out else []
            if trans_params and trans_params["last"] > 1 and left_out != "transition":
                lasts.append("transition")  # the newest item's transitions apart from the older ones'
            stack = RankingStack(candidates=candidates, max_train_users=ranker_users, last_item_generators=lasts,
                                 num_threads=threads, seed=seed)
            with phases.phase(f"{name}: train the LambdaMART ranker on s[-2]"), PeakRSS() as pm:
                stack.fit(generators=val, validation=(split.valid_hist, split.valid_target),
                          item_side=ItemSide(popularity=pop, category=categories))
            # test: same booster, generators refitted on s[:-1] (popularity recounted as well)
            stack.generators_ = {g: m for g, m in gens_test.items() if g != left_out}
            stack.item_side_ = ItemSide(popularity=pop_test, category=categories)
            r = score(name, stack, batch=min(batch_size, 512))
            r.update(ranker_train_seconds=pm.seconds, ranker_train_peak_mb=pm.mb, ranker_trees=stack.best_iteration_,
                     candidate_recall_val=stack.candidate_recall_)
            if left_out is None:
                r.update(lat(stack))
            res[name] = r
            for peer in [p for p in ("ease", "als") if p in res]:
                for m in (f"recall@{k}", f"ndcg@{k}"):
                    r[f"{m}_vs_{peer}"] = r[m] / max(res[peer][m], 1e-12)
            imp = stack.feature_importance()
            info["stack_top_features" if left_out is None else f"stack_without_{left_out}_top_features"] = sorted(
                imp, key=imp.get, reverse=True)[:8]
            phases.echo(f"  {name:12s} R@{k} {r[f'recall@{k}']:.4f} N@{k} {r[f'ndcg@{k}']:.4f}"
                        + (f" p50 {r['latency_p50_ms']:.1f}ms p99 {r['latency_p99_ms']:.1f}ms"
                           if latency_calls and left_out is None else ""))

    if cold_start_fraction > 0:
        _cold_start(sequences, keep, uids, n_items, gen_kinds, cold_start_fraction, seed, k, batch_size, fit,
                    make, res, per_user, info, phases)
    return RecommendRun(res, per_user, info)


def _cold_start(sequences: Sequence[np.ndarray], keep: list[int], uids: list[str], n_items: int,
                kinds: list[str], fraction: float, seed: int, k: int, batch_size: int, fit: Callable[[Any, Any], Any],
                make: Callable[[str], Any], res: dict[str, dict[str, float]],
                per_user: dict[str, dict[str, dict[str, float]]], info: dict[str, Any], phases: Phases) -> None:
    """A share of the items hidden from all training and histories; scored on the users
    whose test item is one of them (only text can find those)."""
    from shopsense.recommend import Interactions

    rng = np.random.default_rng(seed)
    hidden = np.zeros(n_items, bool)
    # the small epsilon keeps 0.1 * 2420 at 242 despite binary floating point
    hidden[rng.choice(n_items, size=int(np.floor(n_items * fraction + 1e-9)), replace=False)] = True
    cold_hist = [sequences[i][:-1][~hidden[sequences[i][:-1]]] for i in keep]
    cold_tgt = np.array([sequences[i][-1] for i in keep], np.int64)
    mask = hidden[cold_tgt]
    info.update(cold_items=int(hidden.sum()), cold_users=int(mask.sum()))
    warm = Interactions.from_sequences(cold_hist, n_items)
    cold_ids = [u for u, m in zip(uids, mask) if m]
    for kind in kinds:
        with phases.phase(f"cold start: {kind}"):
            m = fit(make(kind), warm)
            ranked = rank_model(m, cold_hist, k, batch_size)
        c = evaluate_ranked(ranked, cold_tgt, n_items, k, mask=mask)
        res[kind][f"cold_recall@{k}"] = c[f"recall@{k}"]
        res[kind][f"cold_ndcg@{k}"] = c[f"ndcg@{k}"]
        res[kind]["cold_users"] = c["users"]
        pu = loo_metrics(ranked[mask], cold_tgt[mask], k)
        for key in (f"recall@{k}", f"ndcg@{k}"):
            per_user.setdefault(kind, {})[f"cold_{key}"] = dict(zip(cold_ids, pu[key].tolist()))
        phases.echo(f"  cold {kind:10s} R@{k} {c[f'recall@{k}']:.4f} N@{k} {c[f'ndcg@{k}']:.4f} ({c['users']} users)")


# -- files in, report out (``shopsense eval recommend``) ------------------------------------------
PROTOCOL = ("leave-one-out, rank all items, history excluded; Recall@10/NDCG@10 per user, mean; generators for the "
            "ranker fit on s[:-2], ranker trained on s[-2], test s[-1]; popularity/EASE/ALS peers fit on s[:-1] in "
            "the same run")
TABLE_METRICS = ("recall@10", "ndcg@10", "coverage@10", "cold_recall@10", "cold_ndcg@10", "train_seconds",
                 "latency_p99_ms")


def skips_line(skips: Any) -> str:
    """One line for the console: what was left out and where the first case is."""
    if not skips:
        return ""
    parts = [f"{n:,} {reason.replace('_', ' ')}" for reason, n in skips.counts.items() if n]
    first = f" (first: {skips.examples[0]})" if skips.examples else ""
    return "skipped: " + ", ".join(parts) + first


def evaluate_recommend(
    sequences: str | Path, *, items: str | Path | None = None, fmt: str = "auto",
    items_map: dict[str, str] | None = None, systems: Sequence[str] = SYSTEMS, cold_start_fraction: float = 0.0,
    sasrec_seconds: float = 600.0, seed: int = 0, threads: int = 1, name: str | None = None,
    cache: str | Path | None = None, phases: Phases | None = None, **run_kwargs: Any,
) -> dict[str, Any]:
    """Read a shop's files, run :func:`run_recommend`, and return the result document:
    ``{name: {system: {metric: value}}, "_per_unit": {name: {system: {metric: {user: score}}}},
    "_meta": {...}}`` (what :func:`~shopsense.eval.write_json` and ``eval compare`` take)."""
    from shopsense.datasets import read_items, read_sequences
    from shopsense.eval._recommend import item_categories, item_text
    from shopsense.eval._report import meta
    from shopsense.eval._threads import bounded_threads

    phases = phases or Phases()
    check_param("threads", threads, isinstance(threads, int) and threads >= 1, "an int >= 1", "evaluate_recommend")
    seq_path = Path(sequences)
    item_data = read_items(items, items_map) if items is not None else None
    data = read_sequences(seq_path, fmt, item_ids=item_data.ids if item_data else None)
    for what, sk in (("items", item_data.skips if item_data else None), ("sequences", data.skips)):
        if sk:
            phases.echo(f"[yellow]{what}: {skips_line(sk)}[/]")
    if data.repeats:
        phases.echo(f"sequences: {data.repeats:,} repeated items kept as given (a repeated test item counts as a miss)")
    vecs = cats = None
    if item_data is not None:
        texts = [item_text(r) for r in item_data.records]
        cats = item_categories(item_data.records)
        if any(s in ("content", "sasrec") for s in systems):
            vecs = encode_item_texts(texts, cache, threads, phases)
    try:  # torch threads too: SASRec and the encoder respect the same bound as BLAS and LightGBM
        import torch

        prev_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    except ImportError:  # torch is an extra; only SASRec and text need it
        torch, prev_threads = None, 0
    try:
        with bounded_threads(threads):
            run = run_recommend(data.sequences, data.n_items, user_ids=data.user_ids, systems=systems,
                                item_vectors=vecs, categories=cats, cold_start_fraction=cold_start_fraction,
                                sasrec_seconds=sasrec_seconds, seed=seed, threads=threads, phases=phases,
                                **run_kwargs)
    finally:
        if torch is not None:
            torch.set_num_threads(prev_threads)
    ds = name or seq_path.stem
    m = meta(PROTOCOL + (f"; cold start: {cold_start_fraction:g} of items hidden (seed {seed})"
                         if cold_start_fraction else ""),
             sequences_file=str(seq_path), items_file=str(items) if items else None, format=data.format, seed=seed,
             threads=threads, systems=list(run.results), sasrec_seconds=sasrec_seconds,
             skips={"sequences": data.skips.as_dict(), **({"items": item_data.skips.as_dict()} if item_data else {})},
             repeated_items_kept=data.repeats, **run.info)
    return {ds: run.results, "_per_unit": {ds: run.per_user}, "_meta": m}
