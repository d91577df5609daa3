"""``shopsense ask`` (the shopping assistant in a terminal) and ``shopsense policies``
(the shop's policy files the assistant quotes)."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import typer

from shopsense.cli._app import HomeOpt, app, console, handle_errors, open_engine

policies_app = typer.Typer(help="The shop's policy files (shipping, returns, warranty...) the assistant quotes.",
                           no_args_is_help=True)
app.add_typer(policies_app, name="policies")


def _print_answer(ans: object, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(ans.as_dict(), default=str))  # type: ignore[attr-defined]
        return
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold green]assistant[/] [dim]({ans.intent}, {ans.took_ms:.0f} ms)[/]")  # type: ignore[attr-defined]
    console.print(escape(ans.text))  # type: ignore[attr-defined]
    table = ans.table  # type: ignore[attr-defined]
    if table:
        t = Table()
        t.add_column("")
        for c in table["columns"]:
            t.add_column(escape(c))
        for row in table["rows"]:
            t.add_row(*[escape(str(x)) for x in row])
        console.print(t)
    for link in ans.links:  # type: ignore[attr-defined]
        console.print(f"[dim]see[/] {escape(link['title'])}: {escape(link['href'])}")
    cons = ans.state.get("constraints")  # type: ignore[attr-defined]
    if ans.intent in ("search", "refine") and (ans.state.get("query") or cons):  # type: ignore[attr-defined]
        console.print(f"[dim]query: {escape(ans.state['query'])!s}  constraints: "  # type: ignore[attr-defined]
                      f"{escape(json.dumps(cons))}[/]")


@app.command("ask")
@handle_errors
def ask_cmd(
    text: str = typer.Argument(None, help="one question; without it, an interactive conversation"),
    session: str = typer.Option(None, "--session", help="continue this session id (default: a new one)"),
    user: str = typer.Option(None, "--user", help="link the session to this user id (erased with the user)"),
    as_json: bool = typer.Option(False, "--json", help="print each answer as JSON"),
    home: Path = HomeOpt,
) -> None:
    """Talk to the shopping assistant: search, refine ("cheaper", "only HP", "in black"),
    ask about a product, ask about the shop's policies. Empty line or Ctrl-D ends."""
    sid = session or f"cli-{uuid.uuid4().hex[:12]}"
    with open_engine(home) as eng:
        if text:
            _print_answer(eng.ask(sid, text, user_id=user), as_json)
            return
        interactive = sys.stdin.isatty()
        if interactive:
            console.print(f"[dim]session {sid}; an empty line or Ctrl-D ends[/]")
        while True:
            try:
                line = input("you> " if interactive else "")
            except EOFError:
                break
            if not line.strip() or line.strip().lower() in ("quit", "exit"):
                break
            _print_answer(eng.ask(sid, line, user_id=user), as_json)


@policies_app.command("add")
@handle_errors
def policies_add(
    files: list[Path] = typer.Argument(..., help="markdown or text files (.md, .markdown, .txt)"),
    home: Path = HomeOpt,
) -> None:
    """Copy policy files into HOME/policies and index their passages."""
    from shopsense.assist import policy_index_for
    from shopsense.errors import ValidationError

    with open_engine(home) as eng:
        eng.paths.policies.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f.suffix.lower() not in (".md", ".markdown", ".txt") or not f.is_file():
                raise ValidationError(f"Policy files must be existing .md, .markdown or .txt files. Got {str(f)!r} "
                                      "instead.", field="files")
            shutil.copyfile(f, eng.paths.policies / f.name)
        index = policy_index_for(eng.paths.policies, eng.paths.policy_index, eng.encoder)
    console.print(f"{len(files)} file(s) added; {len(index)} passages indexed -> {eng.paths.policies}")


@policies_app.command("list")
@handle_errors
def policies_list(home: Path = HomeOpt) -> None:
    """The policy files in HOME/policies and their passages' headings."""
    from shopsense.assist import chunk_policy, policy_files
    from shopsense.home import Home

    paths = Home(home)
    files = policy_files(paths.policies)
    if not files:
        console.print(f"no policy files in {paths.policies} (add some with: shopsense policies add FILE)")
        return
    for f in files:
        heads = sorted({p.heading for p in chunk_policy(f.name, f.read_text(encoding='utf-8', errors='replace'))})
        console.print(f"[bold]{f.name}[/]: " + ", ".join(heads))
