"""``shopsense analytics``, ``shopsense experiments`` and ``shopsense privacy``: the
owner's figures, experiments and privacy duties from the command line (the same
functions as the console and the HTTP API)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine
from shopsense.errors import ValidationError

analytics_app = typer.Typer(help="Search and recommendation analytics (aggregates only).", no_args_is_help=True)
experiments_app = typer.Typer(help="A/B and interleaving experiments.", no_args_is_help=True)
privacy_app = typer.Typer(help="Retention of old events; a user's data export.", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
app.add_typer(experiments_app, name="experiments")
app.add_typer(privacy_app, name="privacy")

SinceOpt = typer.Option(None, "--since", help="YYYY-MM-DD (UTC) or epoch seconds; default: 30 days ago")
UntilOpt = typer.Option(None, "--until", help="YYYY-MM-DD (inclusive) or epoch seconds; default: now")


def _when(value: str | None, name: str, end: bool = False) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValidationError(f"--{name} must be YYYY-MM-DD or epoch seconds, got {value!r}.", field=name) from None
    return t + 86400.0 if end else t


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    if not rows:
        console.print(f"{title}: nothing in this range")
        return
    table = Table(title=title)
    cols = list(rows[0])
    for c in cols:
        table.add_column(c, justify="left" if isinstance(rows[0][c], str) else "right")
    for r in rows:
        table.add_row(*("" if r[c] is None else f"{r[c]:.3f}" if isinstance(r[c], float) and abs(r[c]) < 10
                        else f"{r[c]:,.2f}" if isinstance(r[c], float) else
                        ", ".join(map(str, r[c][:3])) if isinstance(r[c], list) else str(r[c]) for c in cols))
    console.print(table)


def _table_command(name: str, doc: str) -> None:
    @analytics_app.command(name, help=doc)
    @handle_errors
    def command(
        since: str = SinceOpt, until: str = UntilOpt,
        limit: int = typer.Option(20, "--limit", help="rows (query tables)"),
        min_users: int = typer.Option(1, "--min-users", help="leave out queries typed by fewer shoppers"),
        csv: bool = typer.Option(False, "--csv", help="print CSV (noisy when an epsilon is set)"),
        epsilon: float = typer.Option(None, "--epsilon", help="Laplace noise on the counts (differential privacy); "
                                      "default: Settings.analytics_epsilon for --csv"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
        home: Path = HomeOpt,
    ) -> None:
        from shopsense.insights import Analytics, private_table, to_csv

        with open_engine(home) as eng:
            s = _when(since, "since")
            a = Analytics(eng.store, since=s if s is not None or until else time.time() - 30 * 86400,
                          until=_when(until, "until", end=bool(until) and len(until) == 10),
                          # what the engine understood, where an index is built (never build one here)
                          understand=(lambda q: eng.searcher.searcher.parse(q, True).as_dict())
                          if (eng.paths.index / "manifest.json").exists() else None)
            kw: dict[str, Any] = {"limit": limit, "min_users": min_users} \
                if name in ("top-queries", "zero-results", "low-click") else {}
            rows = a.table(name, **kw)
            eps = epsilon if epsilon is not None else (eng.settings.analytics_epsilon if csv else None)
            if eps:
                rows = private_table(rows, eps)
        if csv:
            typer.echo(to_csv(rows), nl=False)
        elif as_json:
            console.print_json(json.dumps(rows, default=str))
        else:
            _print_rows(rows, name + (f" (Laplace noise, epsilon {eps})" if eps else ""))


for _name, _doc in (
    ("daily", "Searches, zero-result searches, sessions, clicks, purchases and revenue per day."),
    ("top-queries", "The most searched queries with click-through and mean click position."),
    ("zero-results", "Queries that found nothing, with what the engine understood."),
    ("low-click", "Queries with results but the lowest click-through, with what the engine understood."),
    ("surfaces", "Click-through, add-to-cart and conversion per surface, attributed revenue."),
    ("positions", "Shown, clicks and click-through per position (position bias)."),
    ("revenue", "Revenue per surface, last touch within the session (see shopsense.insights)."),
    ("catalogue", "Products without price, description, image or stock; never shown; never clicked."),
):
    _table_command(_name, _doc)


@analytics_app.command("summary")
@handle_errors
def summary(since: str = SinceOpt, until: str = UntilOpt, home: Path = HomeOpt) -> None:
    """Headline figures of a time range."""
    from shopsense.insights import Analytics

    with open_engine(home) as eng:
        out = Analytics(eng.store, since=_when(since, "since"), until=_when(until, "until", end=bool(until))).summary()
    console.print_json(json.dumps(out))


# -- experiments -----------------------------------------------------------------------------

def _variant(spec: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:{json search options}`` or ``NAME:{"search": {...}, "settings": {...}}``."""
    name, _, raw = spec.partition(":")
    if not raw:
        return {"name": name}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--variant {spec!r}: the overrides are not JSON ({exc}).", field="variant") from exc
    if set(data) <= {"search", "settings", "weight"}:
        return {"name": name, **data}
    return {"name": name, "search": data}


@experiments_app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="experiment name"),
    variants: list[str] = typer.Option(..., "--variant", "-v",
                                       help='NAME or NAME:{"mode": "bm25"} (search options), repeatable; the first '
                                       "is the control"),
    kind: str = typer.Option("ab", "--kind", help="ab or interleave"),
    holdout: float = typer.Option(0.0, "--holdout", help="share of users kept on the normal settings"),
    description: str = typer.Option("", "--description"),
    home: Path = HomeOpt,
) -> None:
    """Create and start an experiment."""
    from shopsense.insights import ExperimentBook

    exp = ExperimentBook(home).create({"name": name, "kind": kind, "holdout": holdout, "description": description,
                                       "variants": [_variant(v) for v in variants]})
    console.print(f"started {exp.kind} experiment {exp.name!r}: " + ", ".join(
        f"{v.name} {json.dumps(v.search or v.settings) if v.search or v.settings else '(control)'}"
        for v in exp.variants) + (f", holdout {exp.holdout:.0%}" if exp.holdout else ""))


@experiments_app.command("list")
@handle_errors
def list_experiments(home: Path = HomeOpt) -> None:
    """Every experiment and its status."""
    from shopsense.insights import ExperimentBook

    for e in ExperimentBook(home).all():
        started = datetime.fromtimestamp(e.started_at, tz=UTC).strftime("%Y-%m-%d %H:%M")
        console.print(f"{e.name:20} {e.kind:10} {e.status:8} since {started}  "
                      + " / ".join(v.name for v in e.variants))


@experiments_app.command("status")
@handle_errors
def status(name: str = typer.Argument(...), home: Path = HomeOpt) -> None:
    """Users per arm and the sample-ratio check."""
    from shopsense.insights import ExperimentBook, srm_check

    exp = ExperimentBook(home).get(name)
    with open_engine(home) as eng:
        rows = [r for r in eng.store.exposures(since=exp.started_at - 1) if r["experiment"] == name]
    users: dict[str, set[str]] = {}
    for r in rows:
        if r["kind"] == "impression":
            users.setdefault(r["variant"] or "", set()).add(r["user_key"])
    console.print(f"{exp.name} ({exp.kind}, {exp.status}): {sum(r['kind'] == 'impression' for r in rows)} "
                  f"impressions, {sum(r['kind'] == 'click' for r in rows)} clicks")
    if exp.kind == "ab":
        observed = {a: len(users.get(a, ())) for a in exp.shares()}
        srm = srm_check(observed, exp.shares())
        for arm, n in observed.items():
            console.print(f"  {arm:12} {n:8,} users (expected share {exp.shares()[arm]:.1%})")
        console.print(f"  sample ratio: chi2 {srm.chi2:.2f}, p {srm.p_value:.3g} -> "
                      + ("[bold red]MISMATCH: do not trust the results[/]" if srm.mismatch else "ok"))


@experiments_app.command("report")
@handle_errors
def report(name: str = typer.Argument(...), home: Path = HomeOpt,
           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Per-variant metrics with 95% intervals (delta method, bootstrap, CUPED)."""
    from shopsense.insights import ExperimentBook, experiment_report

    exp = ExperimentBook(home).get(name)
    with open_engine(home) as eng:
        rows = eng.store.exposures(since=exp.started_at - 1, until=exp.stopped_at)
        pre = None
        if exp.kind == "ab" and exp.pre_period_days > 0:
            ev = eng.store.events(since=exp.started_at - exp.pre_period_days * 86400)
            keep = (ev.timestamp < exp.started_at) & (ev.type == "purchase")
            pre = {}
            for u in ev.user_id[keep]:
                k = eng.store.user_key(u)
                pre[k] = pre.get(k, 0.0) + 1
        rep = experiment_report(exp, rows, pre_period=pre or None, n_boot=1000)
    if as_json:
        console.print_json(json.dumps(rep, default=str))
        return
    if rep["kind"] == "interleave":
        console.print(f"{name}: {rep['impressions']} impressions; {rep['a']} won {rep['wins_a']}, {rep['b']} won "
                      f"{rep['wins_b']}, ties {rep['ties']}; p = {rep['p_value']:.3g}; better: {rep['better'] or '-'}")
        return
    console.print(f"{name}: sample ratio {'MISMATCH' if rep['srm']['mismatch'] else 'ok'} "
                  f"(p {rep['srm']['p_value']:.3g})")
    table = Table(title=f"{name} (control {rep['control']})")
    for c in ("arm", "users", "impressions", "CTR", "CTR diff [95%]", "purchases/user", "diff [95%]",
              "CUPED diff [95%]"):
        table.add_column(c)

    def iv(d: dict[str, Any] | None) -> str:
        return f"{d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else ""

    for arm, m in rep["arms"].items():
        table.add_row(arm, str(m["users"]), str(m["impressions"]), f"{m['ctr']:.4f}" if m["ctr"] is not None else "",
                      iv(m.get("ctr_diff")), f"{m['purchases_per_user']:.4f}" if m["purchases_per_user"] else "",
                      iv(m.get("purchases_per_user_diff")), iv(m.get("purchases_per_user_diff_cuped")))
    console.print(table)


@experiments_app.command("stop")
@handle_errors
def stop(name: str = typer.Argument(...), home: Path = HomeOpt) -> None:
    """Stop an experiment (its report stays)."""
    from shopsense.insights import ExperimentBook

    ExperimentBook(home).stop(name)
    console.print(f"stopped {name!r}")


# -- privacy ------------------------------------------------------------------------------------

@privacy_app.command("retention")
@handle_errors
def retention(days: float = typer.Option(None, "--days", help="default: Settings.event_retention_days"),
              home: Path = HomeOpt) -> None:
    """Delete events and exposures older than the retention period."""
    from shopsense.insights import apply_retention

    with open_engine(home) as eng:
        d = days or eng.settings.event_retention_days
        if not d:
            raise ValidationError("No retention configured: pass --days or set event_retention_days.", field="days")
        out = apply_retention(eng.store, d)
    console.print(f"deleted {out['removed']['events']:,} events and {out['removed']['exposures']:,} exposures "
                  f"older than {out['cutoff']}")


@privacy_app.command("export")
@handle_errors
def export(user_id: str = typer.Argument(...), out: Path = typer.Option(None, "--out", help="write JSON here"),
           home: Path = HomeOpt) -> None:
    """Everything stored about one user, as JSON (beside `shopsense` deletion of the user)."""
    from shopsense.insights import export_user

    with open_engine(home) as eng:
        data = export_user(eng.store, user_id)
    text = json.dumps(data, indent=2, default=str)
    if out:
        out.write_text(text)
        console.print(f"wrote {len(data['events'])} events and {len(data['exposures'])} exposures to {out}")
    else:
        typer.echo(text)
