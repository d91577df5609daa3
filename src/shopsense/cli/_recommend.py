"""``shopsense train``, ``shopsense recommend``, ``shopsense similar``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine, show_hits

FiltersOpt = typer.Option(None, "--filters", "-f", help='JSON filters, e.g. \'{"in_stock": true, "category": "Pens"}\'')


@app.command("train")
@handle_errors
def train_cmd(
    sasrec_seconds: float = typer.Option(300.0, "--sasrec-seconds", help="time budget for the sequential model"),
    no_sasrec: bool = typer.Option(False, "--no-sasrec", help="skip the sequential transformer"),
    no_ranker: bool = typer.Option(False, "--no-ranker", help="skip the LambdaMART ranker"),
    engine: str = typer.Option("local", "--engine", help="local: every model in this process; spark: ALS, "
                               "popularity and trending as Spark jobs (Settings.spark_master)"),
    home: Path = HomeOpt,
) -> None:
    """Retrain every recommendation model from the stored events; saves a new version under HOME/models."""
    with open_engine(home) as eng, console.status("training") as status:
        def say(msg: str) -> None:
            status.update(msg)
            console.print(f"[dim]{msg}[/]")

        if engine == "spark":
            out = eng.train(progress=say, backend="spark")
        else:
            out = eng.train(progress=say, backend=engine, sasrec=not no_sasrec, sasrec_seconds=sasrec_seconds,
                            ranker=not no_ranker)
    console.print(f"model version [bold]{out['version']}[/]: {', '.join(out['models'])} "
                  f"(serving: {out['primary']}), {out['n_users']:,} users, {out['n_items']:,} items, "
                  f"{out['train_seconds']:.0f}s")


def _print(res, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    show_hits(res, lambda h: h.reason or json.dumps(h.evidence), as_json=as_json)


@app.command("recommend")
@handle_errors
def recommend_cmd(
    user: str = typer.Argument(..., help="user id"),
    k: int = typer.Option(10, "-k"),
    filters: str = FiltersOpt,
    include_purchased: bool = typer.Option(False, "--include-purchased", help="allow items the user bought"),
    as_json: bool = typer.Option(False, "--json"),
    home: Path = HomeOpt,
) -> None:
    """Personal recommendations for USER (popular items for a user with no history)."""
    with open_engine(home) as eng:
        res = eng.recommend(user, k=k, filters=json.loads(filters) if filters else None,
                            exclude_purchased=not include_purchased)
    _print(res, as_json)


@app.command("similar")
@handle_errors
def similar_cmd(
    item: str = typer.Argument(..., help="product id"),
    k: int = typer.Option(10, "-k"),
    filters: str = FiltersOpt,
    as_json: bool = typer.Option(False, "--json"),
    home: Path = HomeOpt,
) -> None:
    """Products similar to ITEM (co-interaction and text)."""
    with open_engine(home) as eng:
        res = eng.similar(item, k=k, filters=json.loads(filters) if filters else None)
    _print(res, as_json)
