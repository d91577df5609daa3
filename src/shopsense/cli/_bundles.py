"""``shopsense complements``, ``shopsense complete-cart``, ``shopsense substitutes``, ``shopsense bundle``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine, show_hits

JsonOpt = typer.Option(False, "--json", help="print the full response as JSON")
TextOpt = typer.Option(True, "--text/--no-text", help="use item text embeddings (cold start, substitutes)")


def bundle_why(h: Any) -> str:
    """The 'why' column of the bundle commands: the reason, and the pair's lift when known."""
    why = h.reason or json.dumps(h.evidence, default=str)
    if "lift" in h.evidence and h.evidence.get("lift"):
        why += f" (lift {h.evidence['lift']:.1f})"
    return why


def _show(res: Any, title: str, as_json: bool) -> None:
    show_hits(res, bundle_why, title=title, as_json=as_json, title_width=50)


def _engine(home: Path, text: bool) -> Any:
    """The engine, as Python and HTTP callers get it (rules, diversity and reasons included);
    ``--no-text`` turns off the text embeddings of the bundle service for this run."""
    return open_engine(home, **({} if text else {"bundles_use_text": False}))


@app.command("complements")
@handle_errors
def complements_cmd(
    item: str = typer.Argument(..., help="product id"),
    k: int = typer.Option(10, "-k", help="how many"),
    text: bool = TextOpt, as_json: bool = JsonOpt, home: Path = HomeOpt,
) -> None:
    """Items frequently bought with ITEM (and complements learned beyond observed pairs)."""
    with _engine(home, text) as eng:
        res = eng.complements(item, k=k)
    _show(res, f"goes with {item}", as_json)


@app.command("complete-cart")
@handle_errors
def complete_cart_cmd(
    items: list[str] = typer.Argument(..., help="product ids in the cart"),
    k: int = typer.Option(10, "-k", help="how many"),
    text: bool = TextOpt, as_json: bool = JsonOpt, home: Path = HomeOpt,
) -> None:
    """Additions for a whole cart (never the cart items nor their substitutes)."""
    with _engine(home, text) as eng:
        res = eng.complete_cart(items, k=k)
    _show(res, f"complete the cart of {len(items)} items", as_json)


@app.command("substitutes")
@handle_errors
def substitutes_cmd(
    item: str = typer.Argument(..., help="product id"),
    k: int = typer.Option(10, "-k", help="how many"),
    as_json: bool = JsonOpt, home: Path = HomeOpt,
) -> None:
    """Items that could replace ITEM: similar text and category, rarely bought together."""
    with open_engine(home) as eng:
        res = eng.substitutes(item, k=k)
    _show(res, f"instead of {item}", as_json)


@app.command("bundle")
@handle_errors
def bundle_cmd(
    items: list[str] = typer.Argument(..., help="product id(s) the bundle is built around"),
    size: int = typer.Option(3, "--size", help="items in the bundle, the given ones included"),
    budget: float = typer.Option(None, "--budget", help="most the whole bundle may cost"),
    max_per_category: int = typer.Option(1, "--max-per-category", help="added items per category"),
    text: bool = TextOpt, as_json: bool = JsonOpt, home: Path = HomeOpt,
) -> None:
    """A bundle around ITEMS maximising complementarity within a budget, in stock only."""
    with _engine(home, text) as eng:
        res = eng.bundle(items, size=size, budget=budget, max_per_category=max_per_category)
    _show(res, f"bundle around {', '.join(items)}", as_json)
    if not as_json:
        info = res.info
        total = info.get("total_price")
        console.print(f"total price {total if total is not None else 'unknown'}"
                      + (f" (budget {info['budget']:g})" if info.get("budget") is not None else "")
                      + (" - proven optimal" if info.get("optimal") else " - best found within the node limit")
                      + (f"; {info['reason']}" if info.get("reason") else ""))
