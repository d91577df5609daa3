"""Every code block of the docs runs or is checked, so the pages cannot rot.

- ``python`` blocks run, page by page in one namespace (a page is one story), in a fresh
  folder holding the files the pages name (``products.csv``, ``events.csv``: 300 Amazon Office
  products and their shoppers' purchases, from the bundled demo sample).
- ``bash`` blocks are checked line by line: a ``shopsense`` command must exist and take every
  option shown; a ``make`` target must exist in the Makefile; a script must exist; a ``pip``
  extra must exist in pyproject.toml; a ``curl`` path must be an operation of the HTTP API.
- ``toml`` blocks parse, and every key is a setting.
- Blocks that only include a lesson script (``--8<--``) are covered by test_lessons.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.docs.conftest import DOCS, REPO

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.MULTILINE | re.DOTALL)
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)
SHELL = {"bash", "sh", "shell", "console"}


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line) of each fenced block of a page, dedented."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        lang = (m.group("info").strip().split() or [""])[0].lower()
        out.append((lang, textwrap.dedent(m.group("body")), text.count("\n", 0, m.start()) + 1))
    return out


def is_snippet(code: str) -> bool:
    return all(line.strip().startswith("--8<--") for line in code.strip().splitlines())


def test_the_fence_parser_sees_the_blocks():  # type: ignore[no-untyped-def]
    langs = {lang for page in PAGES for lang, _, _ in blocks(page)}
    assert {"python", "bash", "text", "mermaid"} <= langs


# -- python ---------------------------------------------------------------------------------
PY_PAGES = [p for p in PAGES if any(lang in ("python", "py") and not is_snippet(code) for lang, code, _ in blocks(p))]


def write_shop_files(folder: Path) -> None:
    """products.csv and events.csv in a shop's own column names (see getting-started.md)."""
    import pandas as pd

    demo = REPO / "data" / "demo"
    lines = (demo / "office_products.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    prods = [json.loads(line) for line in lines]
    pd.DataFrame({"sku": [p["id"] for p in prods], "name": [p["title"] for p in prods],
                  "brand": [p.get("brand", "") for p in prods],
                  "category": [" > ".join(p.get("category", [])) for p in prods],
                  "in_stock": [p.get("in_stock", True) for p in prods]}).to_csv(folder / "products.csv", index=False)
    ev = pd.read_parquet(demo / "office_events.parquet")
    ev = ev[ev.item_id.isin({p["id"] for p in prods})]
    ev = ev[ev.user_id.isin(ev.user_id.unique()[:400])]
    when = pd.to_datetime(ev.timestamp, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"customer": ev.user_id, "sku": ev.item_id, "action": ev.type, "when": when}).to_csv(
        folder / "events.csv", index=False)


@pytest.mark.parametrize("page", PY_PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PY_PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    write_shop_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for lang, code, line in blocks(page):
        if lang in ("python", "py") and not is_snippet(code):
            exec(compile(code, f"{page.relative_to(REPO)}:{line}", "exec"), namespace)  # noqa: S102
    for value in list(namespace.values()):  # engines the page left open
        if type(value).__name__ == "Engine":
            value.close()


# -- shell ----------------------------------------------------------------------------------
def _commands() -> Any:
    import typer

    from shopsense.cli import app

    return typer.main.get_command(app)


def check_shopsense(args: list[str], where: str) -> None:
    cmd, path = _commands(), ["shopsense"]
    while getattr(cmd, "commands", None) and args and args[0] in cmd.commands:
        cmd = cmd.commands[args[0]]
        path.append(args.pop(0))
    if getattr(cmd, "commands", None):
        assert args and args[0] in ("--help", "-h"), f"{where}: {' '.join(path)} needs one of {sorted(cmd.commands)}"
        return
    options: dict[str, bool] = {"--help": False}
    n_args, unlimited = 0, False
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option":
            takes = not (getattr(p, "is_flag", False) or getattr(p, "count", False))
            for o in [*p.opts, *getattr(p, "secondary_opts", [])]:
                options[o] = takes
        else:
            n_args += 1
            unlimited |= getattr(p, "nargs", 1) == -1
    positional = 0
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("-") and tok != "-":
            name = tok.split("=", 1)[0]
            assert name in options, f"{where}: {' '.join(path)} has no option {name} (has {sorted(options)})"
            i += 2 if options[name] and "=" not in tok else 1
            continue
        positional += 1
        i += 1
    assert unlimited or positional <= n_args, f"{where}: {' '.join(path)} takes {n_args} arguments, got {positional}"


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


def _extras() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])


def _api_paths() -> list[re.Pattern[str]]:
    from tests.docs.conftest import load_path

    hook = load_path(DOCS / "_hooks" / "gen_pages.py", "shopsense_docs_hook_paths")
    return [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in hook.openapi_schema()["paths"]]


def check_line(tokens: list[str], where: str) -> None:
    head = os.path.basename(tokens[0])
    if head == "shopsense":
        check_shopsense(tokens[1:], where)
    elif head == "make":
        for target in tokens[1:]:
            if "=" not in target:
                assert target in _make_targets(), f"{where}: no make target {target!r}"
    elif head.startswith("python"):
        script = next((t for t in tokens[1:] if t.endswith(".py")), None)
        assert script is None or (REPO / script).is_file(), f"{where}: no script {script}"
    elif head == "pip":
        for t in tokens:
            for extra in re.findall(r"shopsense\[([^\]]+)\]", t):
                unknown = set(extra.split(",")) - _extras()
                assert not unknown, f"{where}: no extra {unknown}"
    elif head == "curl":
        urls = [t for t in tokens if "localhost" in t or "127.0.0.1" in t]
        for url in urls:
            path = "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else "/"
            assert any(p.match(path) for p in _api_paths()), f"{where}: no HTTP operation {path}"
    elif head == "mkdocs":
        assert tokens[1] in ("build", "serve"), f"{where}: mkdocs {tokens[1]}"
    else:
        raise AssertionError(f"{where}: a command the docs test does not know how to check: {tokens[0]!r}")


SH_BLOCKS = [(p, code, line) for p in PAGES for lang, code, line in blocks(p) if lang in SHELL]


@pytest.mark.parametrize("page,code,line", SH_BLOCKS, ids=[f"{p.relative_to(DOCS)}:{n}" for p, _, n in SH_BLOCKS])
def test_shell_blocks_name_real_commands(page, code, line):  # type: ignore[no-untyped-def]
    logical = code.replace("\\\n", " ")
    for i, text in enumerate(logical.splitlines()):
        text = text.strip().removeprefix("$ ")
        if not text or text.startswith("#"):
            continue
        command: list[str] = []
        for tok in [*shlex.split(text, comments=True), "&&"]:
            if tok in ("&&", ";", "||"):
                if command:
                    check_line(command, f"{page.relative_to(REPO)}:{line + i + 1}")
                command = []
            else:
                command.append(tok)


TOML_BLOCKS = [(p, code, line) for p in PAGES for lang, code, line in blocks(p) if lang == "toml"]


@pytest.mark.parametrize("page,code,line", TOML_BLOCKS, ids=[f"{p.relative_to(DOCS)}:{n}" for p, _, n in TOML_BLOCKS])
def test_toml_blocks_are_settings(page, code, line):  # type: ignore[no-untyped-def]
    from shopsense import Settings

    values = tomllib.loads(code)
    unknown = set(values) - set(Settings.model_fields)
    assert not unknown, f"{page.relative_to(REPO)}:{line}: not settings: {unknown}"
    Settings(**values)  # and they validate
