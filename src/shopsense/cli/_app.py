"""The Typer app and the shared error handling of every command."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from shopsense.errors import ShopsenseError

app = typer.Typer(
    name="shopsense", help="Search and recommendations for online shops.", no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

HomeOpt = typer.Option(Path("shopsense_home"), "--home", envvar="SHOPSENSE_HOME",
                       help="engine home directory")


def handle_errors(fn: F) -> F:
    """Print shopsense errors as one clear line and exit 1 (2 for bad input)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except ShopsenseError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="log at INFO level")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def open_engine(home: Path, **overrides: Any) -> Any:
    """The engine of ``home``; ``overrides`` are settings for this run only."""
    from shopsense.engine import Engine

    return Engine(home, **overrides)


def show_hits(res: Any, why: Callable[[Any], str], *, title: str | None = None, as_json: bool = False,
              title_width: int = 60) -> None:
    """A result list as JSON (``--json``) or a table: rank, id, title, price, score, source, and
    ``why(hit)``; shared by search, recommend and the bundle commands."""
    import json

    from rich.table import Table

    if as_json:
        console.print_json(json.dumps(res.as_dict(include_product=False), default=str))
        return
    table = Table(title=title)
    for col in ("#", "id", "title", "price", "score", "source", "why"):
        table.add_column(col)
    for i, h in enumerate(res.hits, 1):
        p = h.product
        price = "" if p is None or p.price is None else f"{p.price:g}"
        table.add_row(str(i), h.id, (p.title[:title_width] if p else ""), price, f"{h.score:.3f}", h.source, why(h))
    console.print(table)
