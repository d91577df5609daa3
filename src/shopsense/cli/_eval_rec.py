"""``shopsense eval recommend`` and ``shopsense eval baskets``: the project's
recommendation and basket-completion protocols on a shop's own files."""

from __future__ import annotations

from pathlib import Path

import typer

from shopsense.cli._app import console, handle_errors
from shopsense.cli._eval import eval_app


def _systems(value: str, known: tuple[str, ...], option: str) -> list[str]:
    from shopsense.errors import ValidationError

    names = [s.strip().lower() for s in value.split(",") if s.strip()]
    bad = [s for s in names if s not in known]
    if bad or not names:
        raise ValidationError(f"The '{option}' option must be a comma-separated subset of {','.join(known)}. "
                              f"Got {value!r} instead.", field=option.lstrip("-"))
    return [s for s in known if s in names]  # canonical order: the stack's features keep one order


def _done(path: Path, png: Path | None) -> None:
    console.print(f"wrote {path}" + (f" and {png}" if png else ""))


@eval_app.command("recommend")
@handle_errors
def recommend_cmd(
    sequences: Path = typer.Option(..., "--sequences", help="one user a line (user id, then item ids in time order, "
                                   "whitespace or commas), a {user: [items]} JSON, or an events file "
                                   "(CSV/JSONL/Parquet: user_id, item_id, timestamp[, type])"),
    items: Path = typer.Option(None, "--items", help="item file (CSV/JSONL/Parquet or {id: {...}} JSON): id, title, "
                               "brand, categories, description; adds the content and text-aware paths"),
    fmt: str = typer.Option("auto", "--format", help="auto | sequences | events"),
    items_map: list[str] = typer.Option(None, "--items-map", help="item file column=field (id, title, brand, "
                                        "categories, description); repeatable"),
    # every system (eval.RECOMMEND_SYSTEMS, spelled out: the CLI imports eval lazily)
    systems: str = typer.Option("popularity,ease,itemknn,als,content,transition,sasrec,stack", "--systems",
                                help="comma-separated: popularity, ease, itemknn, als, content, transition, "
                                "sasrec, stack"),
    cold_start_fraction: float = typer.Option(0.0, "--cold-start-fraction", min=0.0, max=0.9,
                                              help="share of items hidden from training, scored separately"),
    sasrec_seconds: float = typer.Option(600.0, "--sasrec-seconds", min=1.0, help="SASRec training budget"),
    sasrec_negatives: int = typer.Option(0, "--sasrec-negatives", min=0,
                                         help="0: SASRec with the full softmax; N: sampled softmax over N uniform "
                                         "negatives (eSASRec's loss; far cheaper per epoch on a large catalogue)"),
    sasrec_patience: int = typer.Option(3, "--sasrec-patience", min=1,
                                        help="validations (every 2 epochs) without a better NDCG@10 before "
                                        "SASRec stops"),
    seed: int = typer.Option(0, "--seed", help="seed of every random choice (ALS, SASRec, ranker, cold items)"),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for BLAS, torch, ALS and LightGBM"),
    name: str = typer.Option(None, "--name", help="dataset name in the results (default: the file's stem)"),
    cache: Path = typer.Option(None, "--cache", help="embedding cache folder (default ~/.cache/shopsense)"),
    out: Path = typer.Option(Path("eval_recommend.json"), "--out", help="result JSON (a PNG is written beside it)"),
) -> None:
    """Leave-one-out on your own sequences: every generator and the full stack against popularity, ALS and EASE.

    Each user's last item is the test target and the one before it the validation
    target; every item is ranked, history excluded. Reports Recall@10, NDCG@10,
    coverage@10, train seconds and latency; writes JSON with per-user scores (for
    ``shopsense eval compare``) and a PNG."""
    from shopsense.catalog import parse_mapping
    from shopsense.eval import RECOMMEND_SYSTEMS as SYSTEMS
    from shopsense.eval import RECOMMEND_TABLE_METRICS as TABLE_METRICS
    from shopsense.eval import RichPhases, evaluate_recommend, save_report

    chosen = _systems(systems, SYSTEMS, "--systems")
    with RichPhases(console) as phases:
        doc = evaluate_recommend(sequences, items=items, fmt=fmt, items_map=parse_mapping(items_map), systems=chosen,
                                 cold_start_fraction=cold_start_fraction, sasrec_seconds=sasrec_seconds, seed=seed,
                                 threads=threads, name=name, cache=cache, phases=phases,
                                 sasrec_negatives=sasrec_negatives, sasrec_patience=sasrec_patience)
    skipped = doc["_meta"].get("skipped_systems") or {}
    for s, why in skipped.items():
        console.print(f"[yellow]{s} left out: {why}[/]")
    peer = next((p for p in ("ease", "als", "popularity") if p in chosen), None)
    _done(*save_report(doc, out, title="eval recommend", peer=peer, chart_metric="ndcg@10",
                       table_metrics=TABLE_METRICS))


@eval_app.command("baskets")
@handle_errors
def baskets_cmd(
    baskets: Path = typer.Option(..., "--baskets", help="one basket a line (item ids separated by commas), or rows "
                                 "(CSV/JSONL/Parquet) with a basket column (basket_id, order_id, InvoiceNo, "
                                 "session_id), an item column (item_id, StockCode, ...) and optionally a time "
                                 "and a quantity column"),
    items: Path = typer.Option(None, "--items", help="item file: id, title, brand, categories, description; adds "
                               "text and category signals, and items outside it are skipped and counted"),
    items_map: list[str] = typer.Option(None, "--items-map", help="item file column=field; repeatable"),
    fmt: str = typer.Option("auto", "--format", help="auto | lines | rows"),
    split: str = typer.Option("random", "--split", help="random | time (rows with a time column: by basket time; "
                              "otherwise the file order)"),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.01, max=0.9, help="share of baskets tested"),
    seed: int = typer.Option(0, "--seed", help="seed of the split, the hidden items and the validation sample"),
    max_test: int = typer.Option(0, "--max-test", min=0, help="subsample test cases (0 = all)"),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for BLAS and the text encoder"),
    name: str = typer.Option(None, "--name", help="dataset name in the results (default: the file's stem)"),
    cache: Path = typer.Option(None, "--cache", help="embedding cache folder (default ~/.cache/shopsense)"),
    out: Path = typer.Option(Path("eval_baskets.json"), "--out", help="result JSON (a PNG is written beside it)"),
) -> None:
    """Basket completion on your own baskets: popularity, co-occurrence, association rules and the complement model.

    One item of every test basket is hidden and each system ranks the catalogue
    minus the visible items; Hit@10 and NDCG@10. Settings (mlxtend's min_support
    included) are chosen on a validation split of the training baskets. Writes JSON
    with per-basket scores (for ``shopsense eval compare``) and a PNG."""
    from shopsense.catalog import parse_mapping
    from shopsense.eval import BASKET_TABLE_METRICS as TABLE_METRICS
    from shopsense.eval import RichPhases, evaluate_baskets, save_report

    with RichPhases(console) as phases:
        doc = evaluate_baskets(baskets, items=items, items_map=parse_mapping(items_map), fmt=fmt, split=split,
                               test_fraction=test_fraction, seed=seed, max_test=max_test, threads=threads, name=name,
                               cache=cache, phases=phases)
    _done(*save_report(doc, out, title="eval baskets", peer="mlxtend_rules", chart_metric="hit@10",
                       table_metrics=TABLE_METRICS))
