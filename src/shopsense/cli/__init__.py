"""The ``shopsense`` command line (Typer). Each capability registers its own
commands from a module of this package; this file only wires them."""

from __future__ import annotations

from shopsense.cli._app import app, console
from shopsense.cli import _catalog  # noqa: F401  (registers ingest, stats)
from shopsense.cli import _demo  # noqa: F401  (registers demo)
from shopsense.cli import _eval  # noqa: F401  (registers eval)
from shopsense.cli import _eval_rec  # noqa: F401  (registers eval recommend, eval baskets)
from shopsense.cli import _tune  # noqa: F401  (registers tune, export-onnx)
from shopsense.cli import _rules  # noqa: F401  (registers rules)
from shopsense.cli import _serve  # noqa: F401  (registers serve, keys)
from shopsense.cli import _search  # noqa: F401  (registers index, search)
from shopsense.cli import _bundles  # noqa: F401  (registers complements, complete-cart, substitutes, bundle)
from shopsense.cli import _recommend  # noqa: F401  (registers train, recommend, similar)

__all__ = ["app", "console", "main"]


def main() -> None:
    app()
