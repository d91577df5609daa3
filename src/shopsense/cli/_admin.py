"""``shopsense users delete``, ``shopsense models list`` and ``shopsense models prune``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine
from shopsense.errors import check_param
from shopsense.home import Home

users_app = typer.Typer(help="Shoppers' data: erase a user.", no_args_is_help=True)
app.add_typer(users_app, name="users")
models_app = typer.Typer(help="Saved recommendation model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@users_app.command("delete")
@handle_errors
def users_delete(
    user_id: str = typer.Argument(..., help="the user id, exactly as stored"),
    home: Path = HomeOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Erase every event of a user from the store (the file keeps no trace of them).

    Any stored id works here, including ids that cannot appear in a URL (stored before
    ingestion refused them). A running server drops its cached lists for the user when
    the erasure goes through its ``DELETE /users/{id}``; after this command its cached
    lists expire with the cache TTL.
    """
    with open_engine(home) as eng:
        removed = eng.delete_user(user_id)
    if as_json:
        console.print_json(json.dumps({"user_id": user_id, "removed": removed}, default=str))
        return
    console.print(f"user {user_id!r}: {removed.get('events', 0):,} events erased")


def model_versions(home: Home) -> list[dict[str, Any]]:
    """The saved recommendation versions under ``home/models``, oldest first, each with
    ``version``, ``path``, ``built_at`` and ``current``. Folders that are not versions
    (``encoder/``, ``onnx/``, a ``.tmp-`` version being written) are not listed."""
    current = home.models_current.read_text().strip() if home.models_current.exists() else None
    out = []
    for d in sorted(home.models.glob("*/manifest.json")) if home.models.exists() else []:
        folder = d.parent
        if folder.name.startswith("."):
            continue
        try:
            manifest = json.loads(d.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("format") != "shopsense.recommend":
            continue
        out.append({"version": folder.name, "path": folder, "built_at": manifest.get("built_at", ""),
                    "current": folder.name == current})
    return sorted(out, key=lambda v: (v["built_at"], v["version"]))


def prune_models(home: Home, keep: int, dry_run: bool = False) -> list[str]:
    """Delete all but the ``keep`` newest versions; the CURRENT one is always kept (and
    counts as one of them). Returns the versions deleted (or that would be, with ``dry_run``)."""
    check_param("keep", keep, isinstance(keep, int) and keep >= 1,
                "an int >= 1 (the current version is always kept)", "models prune")
    versions = model_versions(home)
    kept = {v["version"] for v in versions if v["current"]}
    for v in reversed(versions):
        if len(kept) >= keep:
            break
        kept.add(v["version"])
    gone = [v for v in versions if v["version"] not in kept]
    if not dry_run:
        for v in gone:
            # a server may still hold an old version's arrays in memory; its files can go
            shutil.rmtree(home.model_version(v["version"]))
    return [v["version"] for v in gone]


@models_app.command("list")
@handle_errors
def models_list(home: Path = HomeOpt) -> None:
    """The saved versions, oldest first, and which one is current."""
    table = Table(title="model versions")
    for col in ("version", "built at", "current"):
        table.add_column(col)
    for v in model_versions(Home(home)):
        table.add_row(v["version"], v["built_at"], "*" if v["current"] else "")
    console.print(table)


@models_app.command("prune")
@handle_errors
def models_prune(
    keep: int = typer.Option(..., "--keep", min=1, help="how many versions to keep, the current one included"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be deleted, delete nothing"),
    home: Path = HomeOpt,
) -> None:
    """Delete old model versions, keeping the KEEP newest and always the current one."""
    gone = prune_models(Home(home), keep, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(gone)} version(s)" + (": " + ", ".join(gone) if gone else ""))
