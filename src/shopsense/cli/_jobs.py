"""``shopsense jobs ...``: batch jobs on Apache Spark (the spark extra and a Java runtime)."""

from __future__ import annotations

from pathlib import Path

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine

jobs_app = typer.Typer(help="Batch jobs on Apache Spark: ALS training, co-occurrence, FP-Growth, embeddings "
                            "(pip install 'shopsense\\[spark]'; needs Java).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

MasterOpt = typer.Option(None, "--master", help="Spark master (default: the spark_master setting, local[*])")


def _say(status):  # type: ignore[no-untyped-def]
    def say(msg: str) -> None:
        status.update(msg.strip())
        if not msg.lstrip().startswith("spark stage"):  # task counts only move the status line
            console.print(f"[dim]{msg}[/]")

    return say


@jobs_app.command("train-als")
@handle_errors
def train_als_cmd(
    rank: int = typer.Option(0, "--rank", help="ALS factors (0: min(128, max(8, items // 4)))"),
    reg: float = typer.Option(0.01, "--reg", help="MLlib regParam (scaled by each user's and item's count)"),
    iters: int = typer.Option(15, "--iters", help="ALS iterations"),
    alpha: float = typer.Option(40.0, "--alpha", help="implicit-feedback confidence"),
    master: str = MasterOpt,
    home: Path = HomeOpt,
) -> None:
    """Train ALS (MLlib), popularity and trending on Spark; saves a new model version that
    `shopsense recommend` serves."""
    from shopsense.jobs import train_spark

    with open_engine(home) as eng, console.status("starting Spark") as status:
        out = train_spark(eng, progress=_say(status), master=master, rank=rank or None, reg=reg, iters=iters,
                          alpha=alpha)
    console.print(f"model version [bold]{out['version']}[/] (spark): {', '.join(out['models'])} "
                  f"(serving: {out['primary']}), {out['n_users']:,} users, {out['n_items']:,} items, "
                  f"{out['train_seconds']:.0f}s")


@jobs_app.command("cooccurrence")
@handle_errors
def cooccurrence_cmd(
    min_support: int = typer.Option(2, "--min-support", help="baskets a pair needs to be kept"),
    half_life_days: float = typer.Option(0.0, "--half-life-days", help="time decay of basket weights (0: none)"),
    fpgrowth: bool = typer.Option(True, "--fpgrowth/--no-fpgrowth", help="also mine FP-Growth itemsets and rules"),
    min_confidence: float = typer.Option(0.1, "--min-confidence", help="FP-Growth rule confidence"),
    out: Path = typer.Option(None, "--out", help="output folder (default: HOME/jobs/cooccurrence)"),
    master: str = MasterOpt,
    home: Path = HomeOpt,
) -> None:
    """Item-pair counts, support, confidence and lift within baskets (Spark SQL), and FP-Growth
    as the association-rule peer; written as Parquet."""
    from shopsense.jobs import mine_cooccurrence

    with open_engine(home) as eng, console.status("starting Spark") as status:
        res = mine_cooccurrence(eng, out, progress=_say(status), master=master, min_support=min_support,
                                half_life_days=half_life_days or None, fpgrowth=fpgrowth,
                                min_confidence=min_confidence)
    console.print(f"co-occurrence of {res['n_baskets']:,} baskets written to [bold]{res['folder']}[/] "
                  f"in {res['seconds']:.0f}s")


@jobs_app.command("embed")
@handle_errors
def embed_cmd(
    model: str = typer.Option(None, "--model", help="encoder (default: the home's, see encoder_model)"),
    partitions: int = typer.Option(0, "--partitions", help="Spark tasks (0: Spark's parallelism)"),
    master: str = MasterOpt,
    home: Path = HomeOpt,
) -> None:
    """Encode the catalogue's product texts on Spark (pandas UDF, one encoder per worker) into
    the home's embedding cache, so index and train find them encoded."""
    from shopsense.jobs import embed_catalog_spark

    with open_engine(home) as eng, console.status("starting Spark") as status:
        out = embed_catalog_spark(eng, progress=_say(status), master=master, model=model,
                                  partitions=partitions or None)
    console.print(f"{out['encoded']:,} texts encoded, {out['cached']:,} already cached "
                  f"({out['model']}, dim {out['dim']}) in {out['seconds']:.0f}s")
