"""``shopsense tune`` (adapt the encoder to the shop) and ``shopsense export-onnx``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine
from shopsense.errors import ValidationError


def _judgment_pairs(path: Path, index: dict[str, int], query_col: str, id_col: str, rel_col: str,
                    min_relevance: float, max_negative: float | None) -> Any:
    import pandas as pd

    from shopsense.tune import pairs_from_judgments

    df = pd.read_csv(path, dtype={id_col: str})
    for c in (query_col, id_col, rel_col):
        if c not in df.columns:
            raise ValidationError(f"The judgments file {str(path)!r} has no column {c!r}; columns: {list(df.columns)}.")
    grouped: dict[str, dict[int, float]] = {}
    for q, pid, r in zip(df[query_col].astype(str).str.strip(), df[id_col], df[rel_col].astype(float)):
        row = index.get(str(pid))
        if row is not None:
            grouped.setdefault(q, {})[row] = float(r)
    return pairs_from_judgments(list(grouped), list(grouped.values()), min_gain=min_relevance,
                                negative_max_gain=max_negative)


@app.command()
@handle_errors
def tune(
    home: Path = HomeOpt,
    judgments: Path | None = typer.Option(None, help="CSV of (query, product id, relevance); default: "
                                          "search-then-click/cart/purchase events in the store"),
    query_col: str = typer.Option("search_term", help="judgments: query column"),
    id_col: str = typer.Option("product_uid", help="judgments: product id column"),
    rel_col: str = typer.Option("relevance", help="judgments: relevance column"),
    min_relevance: float = typer.Option(2.0, help="judgments: relevance that makes a positive"),
    max_negative: float = typer.Option(1.34, help="judgments: relevance at or below which a row is a hard negative"),
    item_pairs: bool = typer.Option(False, "--item-pairs", help="also tune on co-viewed/co-purchased products"),
    method: str = typer.Option("full", help="full | lora"),
    epochs: int = typer.Option(1, min=1),
    batch_size: int = typer.Option(64, min=2),
    lr: float | None = typer.Option(None, help="learning rate (default 5e-5 full, 5e-4 LoRA)"),
    max_minutes: float = typer.Option(25.0, min=0.1, help="wall-clock budget; the best checkpoint is kept"),
    patience: int = typer.Option(3, min=1, help="validations without improvement before stopping"),
    eval_every: int = typer.Option(50, min=1, help="steps between validations"),
    val_fraction: float = typer.Option(0.1, help="share of queries held out for early stopping"),
    hard_negatives: bool = typer.Option(True, help="mine hard negatives with the current encoder"),
    version: str | None = typer.Option(None, help="folder name under home/models/encoder (default: a timestamp)"),
    activate: bool = typer.Option(True, help="make search and recommendations use the tuned model"),
    reranker: bool = typer.Option(False, "--reranker", help="train the learned search re-ranker (LambdaMART over "
                                  "the top 100 candidates of hybrid search) on --judgments instead of the encoder; "
                                  "saved in home/models/search_reranker, used when search_reranker = true"),
    distil: bool = typer.Option(False, "--distil", help="distil the home's encoder (the active tuned one, else the "
                                "configured model) into a student with --layers layers, trained on the catalogue's "
                                "texts and the shop's search queries (or --judgments queries); saved as a new "
                                "encoder version with its ONNX fp32/int8 export (encoder_backend = \"onnx-int8\")"),
    layers: int = typer.Option(3, min=1, help="--distil: transformer layers the student keeps"),
    cross_encoder: bool = typer.Option(False, "--cross-encoder", help="train the search cross-encoder (MiniLM's "
                                       "first --cross-layers layers reading query and title together) on "
                                       "--judgments, with hard negatives from the first stage's top 30; its depth "
                                       "and blend weight chosen on --val-fraction of the queries; saved with its "
                                       "ONNX int8 export in home/models/search_cross_encoder, used when "
                                       "search_cross_encoder = true"),
    cross_layers: int = typer.Option(3, min=1, max=6, help="--cross-encoder: transformer layers it keeps"),
    distil_lr: float = typer.Option(1e-4, help="--distil: learning rate"),
) -> None:
    """Fine-tune the sentence encoder on the shop's own (query, product) pairs; with
    ``--distil`` shrink it to fewer layers by distillation; with ``--reranker`` train the
    learned search re-ranker on graded judgments; with ``--cross-encoder`` the search
    cross-encoder."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if cross_encoder:
        if judgments is None:
            raise ValidationError("shopsense tune --cross-encoder needs --judgments FILE (query, product id, "
                                  "relevance).", field="judgments")
        _tune_cross_encoder(home, judgments, query_col, id_col, rel_col, val_fraction, cross_layers, epochs,
                            max_minutes)
        return
    if reranker:
        if judgments is None:
            raise ValidationError("shopsense tune --reranker needs --judgments FILE (query, product id, relevance).",
                                  field="judgments")
        _tune_reranker(home, judgments, query_col, id_col, rel_col, val_fraction)
        return
    if distil:
        _distil(home, judgments, query_col, layers, epochs, batch_size, distil_lr, max_minutes, version, activate)
        return

    from shopsense.text import item_embeddings
    from shopsense.tune import (
        EncoderTuner,
        item_pairs_from_events,
        mine_hard_negatives,
        pairs_from_events,
        save_tuned_encoder,
        split_pairs_by_query,
    )

    eng = open_engine(home)
    cat = eng.catalog()
    docs = list(cat.texts())
    if judgments is not None:
        pairs = _judgment_pairs(judgments, cat.index, query_col, id_col, rel_col, min_relevance, max_negative)
        source = f"judgments:{judgments.name}"
    else:
        pairs = pairs_from_events(eng.store.events(), cat.index)
        source = "events:search-then-action"
    if item_pairs:
        ip = item_pairs_from_events(eng.store.events(), cat.index, docs)
        import numpy as np

        from shopsense.tune import PairSet

        pairs = PairSet(pairs.anchors + ip.anchors, np.concatenate([pairs.positives, ip.positives]),
                        np.concatenate([pairs.negatives, ip.negatives]), np.concatenate([pairs.weights, ip.weights]),
                        {**ip.known, **pairs.known})
        source += "+item-pairs"
    if len(pairs) < 2:
        raise ValidationError(f"Found {len(pairs)} training pairs in {source}; need at least 2 "
                              "(search events followed by clicks, carts or purchases, or a judgments file).")
    train, val = split_pairs_by_query(pairs, val_fraction)
    console.print(f"{len(pairs)} pairs from {source}: {len(train)} train, {len(val)} validation "
                  f"({len(set(val.anchors))} queries)")
    if hard_negatives:
        dv = item_embeddings(eng, progress=True)
        qv = eng.encoder.encode_queries(train.queries())
        train = mine_hard_negatives(train, qv, dv)
    tuner = EncoderTuner(eng.settings.encoder_model, method=method, epochs=epochs, batch_size=batch_size, lr=lr,
                         max_seconds=max_minutes * 60, eval_every=eval_every, patience=patience)
    with Progress(TextColumn("[bold]tuning"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("tune", total=None, status="")
        val_txt = [""]

        def progress(d: dict[str, Any]) -> None:
            if "val_mrr@10" in d:
                val_txt[0] = f"val MRR@10 {d['val_mrr@10']:.3f}"
            bar.update(task, completed=d["step"], total=d["total"], status=f"loss {d['loss']:.3f} {val_txt[0]}")

        tuner.fit(train, docs, val if len(val) else None, progress=progress)
    path = save_tuned_encoder(tuner, home, version=version, activate=activate, extra={"source": source})
    m = tuner.manifest()
    console.print(f"saved {path} ({m['steps']} steps, {m['stop_reason']}, best val MRR@10 {m['best_val_mrr@10']}, "
                  f"{m['wall_seconds']:.0f} s wall / {m['cpu_seconds']:.0f} s CPU)"
                  + (" — now active" if activate else ""))


def _distil(home: Path, judgments: Path | None, query_col: str, layers: int, epochs: int, batch_size: int,
            lr: float, max_minutes: float, version: str | None, activate: bool) -> None:
    """Distil the home's encoder into a smaller student (``shopsense tune --distil``)."""
    import pandas as pd
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shopsense.home import Home
    from shopsense.text import encoder_model_for
    from shopsense.tune import EncoderDistiller, save_distilled_encoder

    eng = open_engine(home)
    paths = getattr(eng, "paths", None) or Home(eng.home)
    teacher = encoder_model_for(eng.settings, paths)
    texts = list(dict.fromkeys(eng.catalog().texts()))
    if judgments is not None:
        df = pd.read_csv(judgments)
        if query_col not in df.columns:
            raise ValidationError(f"The judgments file {str(judgments)!r} has no column {query_col!r}; "
                                  f"columns: {list(df.columns)}.", field="query_col")
        queries = sorted(set(df[query_col].astype(str).str.strip()) - {""})
        source = f"catalogue + judgments:{judgments.name}"
    else:
        ev = eng.store.events()
        queries = sorted({str(q or "").strip() for q, t in zip(ev.query.tolist(), ev.type.tolist())
                          if t == "search"} - {""})
        source = "catalogue + search events"
    texts += [q for q in queries if q]
    if len(texts) < 4:
        raise ValidationError(f"Found {len(texts)} texts to distil on ({source}); need at least 4.")
    console.print(f"distilling {teacher} into {layers} layers on {len(texts)} texts ({source})")
    dist = EncoderDistiller(teacher, layers=layers, epochs=epochs, batch_size=batch_size, lr=lr,
                            max_seconds=max_minutes * 60)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as bar:
        t_task = bar.add_task("teacher vectors", total=len(texts), status="")
        s_task = bar.add_task("distilling", total=None, status="")
        cos = [""]

        def progress(d: dict[str, Any]) -> None:
            if d["phase"] == "teacher":
                bar.update(t_task, completed=d["done"], total=d["total"])
                return
            if "val_cosine" in d:
                cos[0] = f"held-out cosine to teacher {d['val_cosine']:.3f}"
            bar.update(s_task, completed=d["step"], total=d["total"], status=f"loss {d['loss']:.4f} {cos[0]}")

        dist.fit(texts, progress=progress)
    path = save_distilled_encoder(dist, paths, version=version, activate=activate, extra={"source": source})
    m = dist.manifest()
    console.print(f"saved {path} (layers {m['layers_kept']} of {m['teacher_layers']}, {m['steps']} steps, "
                  f"{m['stop_reason']}, held-out cosine to the teacher {m['val_cosine_before']:.3f} -> "
                  f"{m['val_cosine']:.3f}, {m['wall_seconds']:.0f} s wall / {m['cpu_seconds']:.0f} s CPU; ONNX int8 in "
                  f"{path / 'onnx'})" + (" — now active" if activate else ""))


def _graded_split(eng: Any, judgments: Path, query_col: str, id_col: str, rel_col: str, val_fraction: float,
                  ) -> tuple[dict[str, dict[int, float]], float, list[str], list[str]]:
    """Graded judgments per query (gain = relevance minus the file's lowest grade, keyed by
    catalogue row) and the queries split into fit / validation by a hash of the query string."""
    import hashlib

    import pandas as pd

    if not 0.0 < val_fraction < 1.0:
        raise ValidationError(f"The 'val_fraction' parameter must be in (0, 1). Got {val_fraction!r} instead.",
                              field="val_fraction")
    index = eng.catalog().index
    df = pd.read_csv(judgments, dtype={id_col: str})
    for c in (query_col, id_col, rel_col):
        if c not in df.columns:
            raise ValidationError(f"The judgments file {str(judgments)!r} has no column {c!r}; "
                                  f"columns: {list(df.columns)}.")
    lowest = float(df[rel_col].astype(float).min())
    grouped: dict[str, dict[int, float]] = {}
    for q, pid, r in zip(df[query_col].astype(str).str.strip(), df[id_col], df[rel_col].astype(float)):
        row = index.get(str(pid))
        if row is not None:
            grouped.setdefault(q, {})[row] = float(r) - lowest
    queries = sorted(grouped)
    val = {q for q in queries
           if int(hashlib.blake2b(q.encode(), digest_size=8).hexdigest(), 16) % 10_000 < val_fraction * 10_000}
    fit_q = [q for q in queries if q not in val]
    val_q = [q for q in queries if q in val]
    if len(fit_q) < 2 or not val_q:
        raise ValidationError(f"Found {len(queries)} judged queries of catalogue products in {judgments.name}; "
                              "need at least 2 to train and 1 to validate.", field="judgments")
    return grouped, lowest, fit_q, val_q


def _tune_cross_encoder(home: Path, judgments: Path, query_col: str, id_col: str, rel_col: str, val_fraction: float,
                        layers: int, epochs: int, max_minutes: float) -> None:
    """Train the search cross-encoder on graded judgments (fit queries), choose its depth and
    blend weight on the validation queries (after the learned re-ranker when the shop uses
    it), and save it with its ONNX int8 export where the search service loads it."""
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shopsense.search import CrossEncoderReranker, choose_blend, cross_groups

    eng = open_engine(home)
    grouped, lowest, fit_q, val_q = _graded_split(eng, judgments, query_col, id_col, rel_col, val_fraction)
    svc = eng.searcher
    s = svc.searcher
    groups = cross_groups(s, fit_q, [grouped[q] for q in fit_q])
    depths = (5, 10, 20)  # bench/search.py: 6.6 / 9.5 / 17 ms per query at p50 with 3 layers on 2 cores
    model = CrossEncoderReranker(layers=None if layers >= 6 else layers, epochs=epochs, depth=max(depths),
                                 max_seconds=max_minutes * 60)
    with Progress(TextColumn("[bold]cross-encoder"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("train", total=None, status="")
        model.fit(groups.queries, groups.texts, groups.gains,
                  progress=lambda d: bar.update(task, completed=d["step"], total=d["total"],
                                                status=f"loss {d['loss']:.3f}, {d['pairs_per_s']:.0f} pairs/s"))
    path = model.save(svc.cross_encoder_dir, extra={"trained_on": f"judgments:{judgments.name}",
                                                     "gain": f"{rel_col} - {lowest:g}", "groups": groups.stats})
    ce = CrossEncoderReranker.load(path)  # choose on the served form (ONNX int8)
    learned = svc.reranker  # the learned re-ranker when the shop uses it: the stage before this one
    rows, prev, cross = [], [], []
    for q in val_q:
        r = s.retrieve(q, k=100)
        if learned is not None:
            r = learned.rerank(s, r)
        rows.append(r.rows)
        prev.append(np.asarray(r.scores, dtype=np.float64))
        cross.append(ce.score_rows(s, r.parsed, r.rows[:max(depths)]))
    sel = choose_blend(rows, prev, cross, [grouped[q] for q in val_q], depths)
    ce.depth, ce.weight = int(sel["depth"]), float(sel["weight"])
    ce.save_blend(path, blend_selection={"on": f"{len(val_q)} validation queries", "after_learned_reranker":
                                         learned is not None, **sel})
    on = getattr(eng.settings, "search_cross_encoder", False)
    t = model.training_
    console.print(f"saved {path} ({len(fit_q)} train queries, {t['pairs']} pairs, {t['steps']} steps, "
                  f"{t['wall_seconds']:.0f} s; on {len(val_q)} validation queries depth {ce.depth}, weight "
                  f"{ce.weight:g}: NDCG@10 {sel['previous_ndcg@10']:.4f} -> {sel['ndcg@10']:.4f})"
                  + ("" if on else " — set search_cross_encoder = true in shopsense.toml to use it"))


def _tune_reranker(home: Path, judgments: Path, query_col: str, id_col: str, rel_col: str, val_fraction: float) -> None:
    """Fit the learned search re-ranker on graded judgments (gain = relevance minus the
    file's lowest grade), early-stopping on ``val_fraction`` of the queries (by a hash of
    the query string), and save it where the search service loads it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shopsense.search import LearnedReranker, judged_features

    eng = open_engine(home)
    grouped, lowest, fit_q, val_q = _graded_split(eng, judgments, query_col, id_col, rel_col, val_fraction)
    svc = eng.searcher
    s = svc.searcher
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as bar:
        arrays = []
        for name, qs in (("train queries", fit_q), ("validation queries", val_q)):
            task = bar.add_task(name, total=len(qs))
            arrays.append(judged_features(s, qs, [grouped[q] for q in qs],
                                          progress=lambda n, t=task: bar.update(t, completed=n)))
    model = LearnedReranker().fit(*arrays[0], validation=arrays[1])
    path = model.save(svc.reranker_dir, extra={"trained_on": f"judgments:{judgments.name}",
                                               "gain": f"{rel_col} - {lowest:g}"})
    on = getattr(eng.settings, "search_reranker", False)
    console.print(f"saved {path} ({len(fit_q)} train / {len(val_q)} validation queries, {model.best_iteration_} "
                  f"trees, validation NDCG@10 {model.best_score_})"
                  + ("" if on else " — set search_reranker = true in shopsense.toml to use it"))


@app.command("export-onnx")
@handle_errors
def export_onnx_cmd(
    home: Path = HomeOpt,
    int8: bool = typer.Option(True, help="also write the int8 (dynamically quantised) graph"),
) -> None:
    """Export the engine's encoder (the tuned one when active) to ONNX for
    ``encoder_backend = "onnx"`` or ``"onnx-int8"``."""
    from shopsense.home import Home
    from shopsense.text import encoder_model_for, export_onnx, onnx_dir_for

    eng = open_engine(home)
    paths = getattr(eng, "paths", None) or Home(eng.home)  # until the engine exposes .paths (ShopContext)
    name = encoder_model_for(eng.settings, paths)
    out = export_onnx(name, onnx_dir_for(name, paths), quantize=int8)
    console.print(json.dumps({"model": name, "onnx_dir": str(out)}))
