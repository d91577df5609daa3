"""``shopsense index`` and ``shopsense search``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine, show_hits


@app.command("index")
@handle_errors
def index_cmd(home: Path = HomeOpt) -> None:
    """Build the search indexes (BM25, embeddings, ANN, query vocabulary) under HOME/index."""
    with open_engine(home) as eng:
        manifest = eng.build_index(progress=True)
    console.print(f"indexed {manifest['products']:,} products in {manifest['seconds']['total']}s "
                  f"(encoder {manifest['encoder_model']}) -> {Path(home) / 'index'}")


@app.command("search")
@handle_errors
def search_cmd(
    query: str = typer.Argument(..., help="what the shopper typed"),
    k: int = typer.Option(10, "-k", help="how many results"),
    filters: str = typer.Option(None, "--filters", "-f", help='JSON filters, e.g. \'{"brand": "DEWALT"}\''),
    user: str = typer.Option(None, "--user", help="personalise for this user id"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, bm25 or dense"),
    as_json: bool = typer.Option(False, "--json", help="print the full response as JSON"),
    home: Path = HomeOpt,
) -> None:
    """Search the catalogue and show hits, what was understood and facets."""
    flt = json.loads(filters) if filters else None
    with open_engine(home) as eng:
        res = eng.search(query, filters=flt, user_id=user, k=k, mode=mode)
    if as_json:
        show_hits(res, str, as_json=True)
        return
    q = res.info["query"]
    understood = {k: v for k, v in q.items() if k in ("text", "corrections", "synonyms", "constraints", "category")
                  and v}
    console.print(f"[bold]{res.info['total']:,}[/] matches; understood: {json.dumps(understood)}")
    show_hits(res, lambda h: h.reason or ", ".join(h.evidence.get("matched_terms", [])))
    for name, counts in res.info["facets"].items():
        if name != "attributes":
            console.print(f"[dim]{name}:[/] " + ", ".join(f"{k} ({v})" for k, v in list(counts.items())[:8]))
