"""``shopsense eval compare``: offline A/B of two result files."""

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
