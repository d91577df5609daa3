"""``shopsense eval compare`` (offline A/B of two result files) and ``shopsense eval search``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from shopsense.cli._app import app, console, handle_errors

eval_app = typer.Typer(help="Evaluate and compare systems offline.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("compare")
@handle_errors
def compare_cmd(
    a: Path = typer.Argument(..., help="baseline result JSON"),
    b: Path = typer.Argument(..., help="candidate result JSON"),
    system_a: str = typer.Option(None, help="system in A (default: every system both files share)"),
    system_b: str = typer.Option(None, help="system in B"),
    n_boot: int = typer.Option(2000, min=100, help="bootstrap resamples"),
    seed: int = typer.Option(0, help="bootstrap seed"),
) -> None:
    """Per-metric differences B - A with paired bootstrap 95% intervals over queries or users."""
    from shopsense.eval import compare, load_result

    diffs = compare(load_result(a), load_result(b), system_a, system_b, n_boot=n_boot, seed=seed)
    table = Table(title=f"{b.name} vs {a.name} (B - A, 95% bootstrap CI)")
    for col in ("dataset", "system", "metric", "A", "B", "B - A", "95% CI", "units"):
        table.add_column(col, justify="right" if col in ("A", "B", "B - A", "units") else "left")
    for d in diffs:
        ci = "n/a" if d.n_units == 0 else f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]"
        mark = " *" if d.n_units and d.significant else ""
        system = d.system_a if d.system_a == d.system_b else f"{d.system_a} -> {d.system_b}"
        table.add_row(d.dataset, system, d.metric, f"{d.a:.4f}", f"{d.b:.4f}", f"{d.diff:+.4f}{mark}",
                      ci, str(d.n_units))
    console.print(table)
    if any(d.n_units == 0 for d in diffs):
        console.print("n/a: no per-unit scores in the files, so no interval (differences only)")
    if not diffs:
        console.print("[yellow]the two files share no dataset/system/metric[/]")
        raise typer.Exit(1)


@eval_app.command("search")
@handle_errors
def search_cmd(
    products: Path = typer.Option(..., "--products", help="products file (CSV, JSONL or Parquet)"),
    judgments: Path = typer.Option(..., "--judgments", help="CSV of (query, product id, graded relevance)"),
    mapping: list[str] = typer.Option(None, "--map", "-m", help="products: column=field, repeatable (as in "
                                      "`shopsense ingest products`); product_uid/product_title work unmapped"),
    judgment_map: list[str] = typer.Option(None, "--judgment-map", help="judgments: column=field with field one of "
                                           "query, product_id, relevance (defaults: query or search_term, "
                                           "product_id or product_uid or item_id, relevance)"),
    fmt: str = typer.Option(None, "--format", help="products format (default: from the suffix)"),
    name: str = typer.Option(None, help="dataset name in the report (default: the products file's folder)"),
    systems: str = typer.Option(None, help="comma-separated systems (default: all available): peer, bm25, bm25-qu, "
                                "dense, hybrid-rrf, hybrid-weighted, hybrid-qu, dense-tuned, hybrid-qu-tuned"),
    split_seed: int = typer.Option(0, help="seed of the dev/test split of the queries"),
    test_fraction: float = typer.Option(0.5, help="share of queries scored; the rest tunes the fusion weights "
                                        "(1.0: score every query with the default weights)"),
    seed: int = typer.Option(0, help="seed of tie-breaking in re-ranking and of the latency sample"),
    latency_queries: int = typer.Option(200, min=0, help="test queries timed per system (0: no latency)"),
    tuned_encoder: str = typer.Option(None, help="also evaluate dense and hybrid with this encoder (a folder "
                                      "written by `shopsense tune`, or a sentence-transformers model)"),
    home: Path = typer.Option(None, "--home", help="engine home to build in and keep (default: a temporary one); "
                              "embeddings cached there are reused by the next run"),
    out: Path = typer.Option(Path("search_eval.json"), "--out", help="result JSON (a PNG is written beside it)"),
) -> None:
    """Evaluate every search system on a shop's own products and relevance judgments."""
    from shopsense.catalog import parse_mapping
    from shopsense.eval import SEARCH_PEER as PEER
    from shopsense.eval import eval_search_files, print_search_table, write_json
    from shopsense.eval import plot_search as plot

    keys = [k.strip() for k in systems.split(",") if k.strip()] if systems else None
    res = eval_search_files(products, judgments, mapping=parse_mapping(mapping), judgment_map=parse_mapping(judgment_map),
                            fmt=fmt, name=name, home=home, keys=keys, test_fraction=test_fraction,
                            split_seed=split_seed, seed=seed, latency_queries=latency_queries,
                            tuned_encoder=tuned_encoder, progress=True)
    meta = res.pop("_meta")
    print_search_table(res, console)
    jr, pr = meta["judgments_file"], meta["products_file"]
    skips = [f"{jr['rows_unknown_product_skipped']:,} judgment rows name unknown products",
             f"{jr['queries_skipped_no_known_product']:,} queries had no known product",
             f"{jr['blank_lines_skipped']:,} blank lines", f"{jr['duplicate_pairs_averaged']:,} duplicate pairs averaged",
             f"{pr['rejected']:,} product rows rejected"]
    console.print(f"queries: {meta['queries']}; gains = {jr['gain']}; skipped: " + "; ".join(skips))
    for line in pr["first_rejects"]:
        console.print(f"  [yellow]rejected product[/] {line}")
    for line in jr["unknown_product_examples"]:
        console.print(f"  [yellow]unknown product in the judgments[/] {line}")
    if jr["queries_without_relevant_product"]:
        console.print(f"{jr['queries_without_relevant_product']:,} queries judge no product above the lowest grade "
                      "(scored 0, as in the standard protocol)")
    if not meta["dense_index"] and any("understanding" in s for s in res[meta["dataset"]]):
        console.print("lexical-only index: spelling correction ran without the encoder's vocabulary, so query "
                      "understanding can score slightly differently than in a run with dense systems")
    if meta.get("tuned"):
        console.print(f"fusion tuned on {meta['queries']['dev']:,} dev queries: {meta['tuned']}")
    if "peer_on_dev" in meta:
        console.print(f"{PEER} on the dev queries: NDCG@10 {meta['peer_on_dev']['ndcg@10']:.4f}")
    path = write_json(res, out, meta)
    png = plot(res, out.with_suffix(".png"))
    console.print(f"wrote {path}" + (f" and {png}" if png else ""))
