"""``shopsense demo``: load the bundled sample, build everything, start the storefront."""

from __future__ import annotations

from pathlib import Path

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine


def copy_demo_policies(policies: Path) -> bool:
    """Give a home the sample shop's policies for the assistant to quote; a home that
    already has a policies folder (the shop's own files) is left as it is."""
    import shutil

    from shopsense.datasets import demo_dir

    source = demo_dir() / "policies"
    if policies.exists() or not source.is_dir():
        return False
    shutil.copytree(source, policies)
    return True


@app.command()
@handle_errors
def demo(
    home: Path = HomeOpt,
    host: str = typer.Option("127.0.0.1", help="interface to serve on"),
    port: int = typer.Option(8000, help="port to serve on"),
    serve: bool = typer.Option(True, help="start the storefront when everything is built"),
) -> None:
    """Ingest the bundled demo catalogue and histories, index, train, then serve."""
    from shopsense.cli._catalog import print_report
    from shopsense.datasets import demo_paths

    paths = demo_paths()
    with open_engine(home) as eng:
        copy_demo_policies(eng.paths.policies)
        if eng.store.count_products() == 0:
            for p in paths["products"]:
                print_report(eng.ingest_products(p, progress=True))
            for p in paths["events"]:
                print_report(eng.ingest_events(p, progress=True))
        else:
            console.print(f"{home} already holds {eng.store.count_products():,} products; reusing it")
        console.print("building the search index ...")
        eng.build_index(progress=True)
        console.print("training the recommenders ...")
        eng.train(progress=True)
    if serve:
        from shopsense.cli._serve import run_server

        console.print(f"storefront: http://{host}:{port}/   dashboard: http://{host}:{port}/dashboard")
        run_server(home, host=host, port=port, demo=True)
