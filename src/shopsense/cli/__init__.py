"""The ``shopsense`` command line (Typer). Each capability registers its own
commands from a module of this package; this file only wires them."""

from __future__ import annotations

from shopsense.cli import (
    _admin,  # noqa: F401  (registers users delete, models list, models prune)
    _assist,  # noqa: F401  (registers ask, policies add, policies list)
    _bundles,  # noqa: F401  (registers complements, complete-cart, substitutes, bundle)
    _catalog,  # noqa: F401  (registers ingest, stats)
    _demo,  # noqa: F401  (registers demo)
    _eval,  # noqa: F401  (registers eval)
    _eval_rec,  # noqa: F401  (registers eval recommend, eval baskets)
    _insights,  # noqa: F401  (registers analytics, experiments, privacy)
    _jobs,  # noqa: F401  (registers jobs train-als, jobs cooccurrence, jobs embed)
    _recommend,  # noqa: F401  (registers train, recommend, similar)
    _rules,  # noqa: F401  (registers rules)
    _search,  # noqa: F401  (registers index, search)
    _serve,  # noqa: F401  (registers serve, keys)
    _tune,  # noqa: F401  (registers tune, export-onnx)
)
from shopsense.cli._app import app, console, show_hits
from shopsense.cli._bundles import bundle_why
from shopsense.cli._demo import copy_demo_policies
from shopsense.cli._serve import fill_embedding_cache, tcp_socket

__all__ = ["app", "bundle_why", "console", "copy_demo_policies", "fill_embedding_cache", "main", "show_hits",
           "tcp_socket"]


def main() -> None:
    """The ``shopsense`` console script: run the command line."""
    app()
