"""``shopsense ingest``, ``shopsense stats``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from shopsense.catalog import IngestReport, parse_mapping
from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine

ingest_app = typer.Typer(help="Load products or events from CSV, JSONL or Parquet.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

MapOpt = typer.Option(None, "--map", "-m", help="column=field, repeatable (e.g. product_uid=id)")
FormatOpt = typer.Option(None, "--format", help="csv, jsonl or parquet (default: from the suffix)")
RejectsOpt = typer.Option(None, "--rejects", help="where to write rejected rows (JSONL)")


def print_report(report: IngestReport) -> None:
    table = Table(title=f"ingest {report.kind}: {Path(report.source).name}")
    for col in ("read", "stored", "duplicates", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{getattr(report, c):,}" for c in ("read", "stored", "duplicates", "rejected")))
    console.print(table)
    if report.unknown_columns:
        what = "stored as attributes" if report.kind == "products" else "ignored"
        console.print(f"columns not in the schema, {what}: {', '.join(report.unknown_columns)}")
    if report.rejected:
        console.print(f"[yellow]{report.rejected:,} rows rejected[/]; first ones:")
        for r in report.rejects[:10]:
            console.print(f"  {r}")
        console.print(f"all rejects: {report.rejects_path}")


def _ingest(kind: str, file: Path, mapping: list[str] | None, fmt: str | None, rejects: Path | None,
            home: Path, strict: bool) -> None:
    with open_engine(home) as eng:
        fn = eng.ingest_products if kind == "products" else eng.ingest_events
        report = fn(file, mapping=parse_mapping(mapping), format=fmt, rejects_path=rejects, progress=True)
    print_report(report)
    if strict and report.rejected:
        raise typer.Exit(3)


@ingest_app.command("products")
@handle_errors
def ingest_products(
    file: Path = typer.Argument(..., help="CSV, JSONL or Parquet file"),
    mapping: list[str] = MapOpt, fmt: str = FormatOpt, rejects: Path = RejectsOpt,
    strict: bool = typer.Option(False, help="exit 3 when any row was rejected"),
    home: Path = HomeOpt,
) -> None:
    """Upsert products by id."""
    _ingest("products", file, mapping, fmt, rejects, home, strict)


@ingest_app.command("events")
@handle_errors
def ingest_events(
    file: Path = typer.Argument(..., help="CSV, JSONL or Parquet file"),
    mapping: list[str] = MapOpt, fmt: str = FormatOpt, rejects: Path = RejectsOpt,
    strict: bool = typer.Option(False, help="exit 3 when any row was rejected"),
    home: Path = HomeOpt,
) -> None:
    """Append events (identical events already stored are skipped)."""
    _ingest("events", file, mapping, fmt, rejects, home, strict)


@app.command()
@handle_errors
def stats(home: Path = HomeOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts of products and events, and what has been built."""
    with open_engine(home) as eng:
        s = eng.stats()
    if as_json:
        console.print_json(json.dumps(s, default=str))
        return
    table = Table(title=f"shopsense home {s['home']}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("products", f"{s['products']:,}")
    table.add_row("events", f"{s['events']:,}")
    for t, n in sorted(s["events_by_type"].items()):
        table.add_row(f"  {t}", f"{n:,}")
    for name, mf in s["built"].items():
        table.add_row(f"built: {name}", str(mf.get("version", mf.get("built_at", ""))))
    console.print(table)
