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


def open_engine(home: Path) -> Any:
    from shopsense.engine import Engine

    return Engine(home)
