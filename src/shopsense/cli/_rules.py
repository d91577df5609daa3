"""``shopsense rules``: list, add and remove business rules (``<home>/rules.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from shopsense.cli._app import HomeOpt, app, console, handle_errors
from shopsense.errors import ValidationError

rules_app = typer.Typer(help="Business rules: pin, boost, bury, exclude; hide out-of-stock.",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")


def _describe_match(m: Any) -> str:
    parts = []
    if m.ids:
        parts.append("ids=" + ",".join(m.ids))
    if m.category:
        parts.append(f"category={m.category}")
    if m.brand:
        parts.append(f"brand={m.brand}")
    parts += [f"{k}={v}" for k, v in m.attributes.items()]
    if m.price_min is not None:
        parts.append(f"price>={m.price_min:g}")
    if m.price_max is not None:
        parts.append(f"price<={m.price_max:g}")
    return " ".join(parts)


@rules_app.command("list")
@handle_errors
def list_rules(home: Path = HomeOpt, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show the stored rules."""
    from shopsense.rerank import load_rules

    rs = load_rules(home)
    if as_json:
        console.print_json(json.dumps(rs.model_dump(mode="json")))
        return
    table = Table(title=f"rules ({'hide' if rs.hide_out_of_stock else 'show'} out-of-stock)")
    for col in ("name", "action", "match", "weight/position", "where", "enabled"):
        table.add_column(col)
    for r in rs.rules:
        where = " ".join([*(f"surface={s}" for s in r.surfaces), *(f"query={q!r}" for q in r.queries)])
        wp = f"position {r.position}" if r.action == "pin" else ("" if r.action == "exclude" else f"{r.weight:g}")
        table.add_row(r.name, r.action, _describe_match(r.match), wp, where or "everywhere", str(r.enabled))
    console.print(table)


@rules_app.command("add")
@handle_errors
def add_rule(
    name: str = typer.Argument(..., help="unique rule name"),
    action: str = typer.Option(..., "--action", "-a", help="pin, boost, bury or exclude"),
    ids: list[str] = typer.Option(None, "--id", help="product id, repeatable"),
    category: str = typer.Option(None, "--category", help="any level of the category path"),
    brand: str = typer.Option(None, "--brand"),
    attrs: list[str] = typer.Option(None, "--attr", help="key=value, repeatable"),
    price_min: float = typer.Option(None, "--price-min"),
    price_max: float = typer.Option(None, "--price-max"),
    weight: float = typer.Option(None, "--weight", help="boost/bury strength, in score spreads (default 0.2)"),
    position: int = typer.Option(None, "--position", help="1-based position for pin"),
    surfaces: list[str] = typer.Option(None, "--surface", help="limit to a surface (search, recommend, similar, next, complements, cart), repeatable"),
    queries: list[str] = typer.Option(None, "--query", help="limit to an exact query, repeatable"),
    home: Path = HomeOpt,
) -> None:
    """Add a rule (validated; errors name the field)."""
    from shopsense.rerank import load_rules, save_rules

    attributes: dict[str, str] = {}
    for a in attrs or []:
        if "=" not in a:
            raise ValidationError(f"Invalid 'rule.match.attributes': expected key=value, got {a!r}.",
                                  field="rule.match.attributes")
        k, v = a.split("=", 1)
        attributes[k.strip()] = v.strip()
    match: dict[str, Any] = {"ids": list(ids or []), "attributes": attributes}
    for key, val in (("category", category), ("brand", brand), ("price_min", price_min),
                     ("price_max", price_max)):
        if val is not None:
            match[key] = val
    rule: dict[str, Any] = {"name": name, "action": action, "match": match,
                            "surfaces": list(surfaces or []), "queries": list(queries or [])}
    if weight is not None:
        rule["weight"] = weight
    if position is not None:
        rule["position"] = position
    rs = load_rules(home).add(rule)
    path = save_rules(home, rs)
    console.print(f"added rule {name!r} ({action}) to {path}")


@rules_app.command("remove")
@handle_errors
def remove_rule(name: str = typer.Argument(...), home: Path = HomeOpt) -> None:
    """Remove a rule by name."""
    from shopsense.rerank import load_rules, save_rules

    save_rules(home, load_rules(home).remove(name))
    console.print(f"removed rule {name!r}")


@rules_app.command("out-of-stock")
@handle_errors
def out_of_stock(hide: bool = typer.Option(..., "--hide/--show", help="hide or show out-of-stock items"),
                 home: Path = HomeOpt) -> None:
    """Hide (or show again) out-of-stock products in every list."""
    from shopsense.rerank import RuleSet, load_rules, save_rules

    rs = load_rules(home)
    save_rules(home, RuleSet(hide_out_of_stock=hide, rules=rs.rules))
    console.print(f"out-of-stock products are now {'hidden' if hide else 'shown'}")


@rules_app.command("check")
@handle_errors
def check_rules(home: Path = HomeOpt) -> None:
    """Validate ``rules.json`` (e.g. after editing it by hand)."""
    from shopsense.rerank import load_rules

    rs = load_rules(home)
    console.print(f"ok: {len(rs.rules)} rules, out-of-stock {'hidden' if rs.hide_out_of_stock else 'shown'}")
