"""``shopsense serve`` and ``shopsense keys``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from shopsense.cli._app import HomeOpt, app, console, handle_errors

keys_app = typer.Typer(help="Manage API keys (stored hashed in the engine home).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def run_server(
    home: Path, host: str = "127.0.0.1", port: int = 8000, *, demo: bool = False,
    require_read_key: bool = False, cors: list[str] | None = None, bench_dir: Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve the API, storefront and dashboard for ``home`` with uvicorn (blocks)."""
    from shopsense.config import Settings
    from shopsense.errors import require

    uvicorn = require("uvicorn", "api")
    from shopsense.serve.main import create_app

    overrides = {"cors_origins": cors} if cors else {}
    settings = Settings.load(home, **overrides)
    application = create_app(settings, demo=demo, require_read_key=require_read_key,
                             bench_dir=bench_dir)
    # uvicorn's own access log prints raw paths, which carry user ids: ours pseudonymises
    uvicorn.run(application, host=host, port=port, access_log=False, log_level=log_level)


@app.command()
@handle_errors
def serve(
    home: Path = HomeOpt,
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    demo: bool = typer.Option(False, "--demo", help="hand the storefront a fresh write key "
                              "(local demos only)"),
    private_reads: bool = typer.Option(False, "--private-reads",
                                       help="require an API key for reads too"),
    cors: list[str] = typer.Option(None, "--cors", help="allowed CORS origin, repeatable"),
    bench_dir: Path = typer.Option(None, help="where the dashboard reads bench results "
                                   "(default ./bench/results)"),
) -> None:
    """Serve the HTTP API, the storefront (/) and the dashboard (/dashboard)."""
    console.print(f"storefront: http://{host}:{port}/   dashboard: http://{host}:{port}/dashboard"
                  f"   API docs: http://{host}:{port}/docs")
    run_server(home, host, port, demo=demo, require_read_key=private_reads, cors=cors,
               bench_dir=bench_dir)


def _keystore(home: Path):  # type: ignore[no-untyped-def]
    from shopsense.config import Settings
    from shopsense.serve._auth import KeyStore

    s = Settings.load(home)
    return KeyStore(s.api_keys_file or Path(s.home) / "api_keys.json")


@keys_app.command("create")
@handle_errors
def keys_create(
    role: str = typer.Option(..., "--role", help="read or write (write is admin)"),
    name: str = typer.Option("", "--name", help="a label for the key"),
    home: Path = HomeOpt,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    key = _keystore(home).create(role, name=name)
    console.print(key, soft_wrap=True, highlight=False)


@keys_app.command("list")
@handle_errors
def keys_list(home: Path = HomeOpt) -> None:
    """List key ids, roles and names (never secrets)."""
    table = Table(title="API keys")
    for col in ("id", "role", "name"):
        table.add_column(col)
    for k in _keystore(home).list():
        table.add_row(k.id, k.role, k.name)
    console.print(table)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (the part after 'ss_')"),
                home: Path = HomeOpt) -> None:
    """Revoke a key by id."""
    if not _keystore(home).revoke(key_id):
        console.print(f"no key {key_id!r}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
