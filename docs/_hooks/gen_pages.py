"""MkDocs hook: the pages that come from the code, generated at every build so they cannot drift.

- ``reference/configuration.md``: every field of :class:`shopsense.Settings` (type, default,
  environment variable, description), at the ``<!-- generated:settings -->`` marker.
- ``reference/http-api.md``: the OpenAPI schema of :func:`shopsense.serve.create_app`, at
  ``<!-- generated:http-api -->``; the schema itself is published as ``reference/openapi.json``.
- ``reference/cli.md``: every ``shopsense`` command with its options, at ``<!-- generated:cli -->``.
- ``reference/python/<package>.md``: one mkdocstrings page per package with an ``__all__``
  (added to the nav under "Python API").
- ``benchmarks.md``: the tables of ``bench/results/*.json`` with their plots, at
  ``<!-- generated:benchmarks -->``.
- ``mindmap.md``: the map drawn from ``docs/mindmap.yml`` (an inline SVG whose every leaf
  links to its lesson and its module) and the same leaves as a table, at
  ``<!-- generated:mindmap -->``.

Nothing here reaches the network; the build is offline.
"""

from __future__ import annotations

import ast
import html
import json
import math
import posixpath
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
BENCH = ROOT / "bench" / "results"
MINDMAP = ROOT / "docs" / "mindmap.yml"
PY_REF = "reference/python"

if str(SRC) not in sys.path:  # a build from a fresh clone needs no install of the package itself
    sys.path.insert(0, str(SRC))


# ---------------------------------------------------------------------------------------------
# packages and their public names (read statically: no heavy import at build time)
# ---------------------------------------------------------------------------------------------
def public_names(init: Path) -> list[str]:
    """The names of ``__all__`` in a package's ``__init__.py`` (empty when there is none)."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return []


def packages() -> list[tuple[str, list[str]]]:
    """``("shopsense", names)`` then every subpackage with an ``__all__``, by name."""
    out = [("shopsense", public_names(SRC / "shopsense" / "__init__.py"))]
    for init in sorted((SRC / "shopsense").glob("*/__init__.py")):
        names = public_names(init)
        if names:
            out.append((f"shopsense.{init.parent.name}", names))
    return out


def package_page(module: str) -> str:
    """The docs path of a package's reference page: ``reference/python/search.md``."""
    short = module.split(".", 1)[1] if "." in module else "shopsense"
    return f"{PY_REF}/{short}.md"


def lazy_names(module: str) -> dict[str, str]:
    """Names of ``__all__`` that a package loads only on first use (a module ``__getattr__``
    keeps a heavy dependency off ``import shopsense``), by the module that defines them: the
    reference documents them there, since a static reader cannot see them in the package."""
    import importlib

    mod = importlib.import_module(module)
    present = set(vars(mod))
    out = {}
    for name in getattr(mod, "__all__", []):
        if name not in present:
            try:
                out[name] = getattr(mod, name).__module__
            except ImportError:  # an optional back-end that is not installed: nothing to document
                continue
    return out


def python_page(module: str, names: list[str]) -> str:
    lazy = lazy_names(module)
    members = [n for n in names if n != "__version__" and n not in lazy]
    out = (
        f"# `{module}`\n\n"
        f"Generated from the docstrings of the names in `{module}.__all__`.\n\n"
        f"::: {module}\n"
        "    options:\n"
        "      show_root_heading: false\n"
        "      show_root_toc_entry: false\n"
        f"      members: {json.dumps(members)}\n"
    )
    for name in names:  # loaded on first use: documented where they are defined
        if name in lazy:
            out += f"\n::: {lazy[name]}.{name}\n    options:\n      show_root_full_path: false\n"
    return out


def _init_of(module: str) -> Path:
    return SRC.joinpath(*module.split(".")) / "__init__.py"


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    for prefix in ("typing.", "pathlib.", "pydantic.types."):
        text = text.replace(prefix, "")
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    from pydantic_core import PydanticUndefined

    from shopsense.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    rows = ["| setting | type | default | environment variable | description |", "|---|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        elif field.default is PydanticUndefined:
            default = "(required)"
        else:
            default = repr(str(field.default) if isinstance(field.default, Path) else field.default)
        bounds = ", ".join(str(m) for m in field.metadata)
        desc = (field.description or "") + (f" (bounds: `{bounds}`)" if bounds else "")
        rows.append(
            f"| `{name}` | `{_cell(_type_name(field.annotation))}` | `{_cell(default)}` | "
            f"`{prefix.upper()}{name.upper()}` | {_cell(desc)} |"
        )
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# HTTP API
# ---------------------------------------------------------------------------------------------
def openapi_schema() -> dict[str, Any]:
    """The schema the server publishes at ``/openapi.json``, from an app over a throwaway home."""
    from shopsense.config import Settings
    from shopsense.serve import create_app

    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)), warm=False)
        schema = app.openapi()
        engine = getattr(getattr(app, "state", None), "engine", None)
        if engine is not None and hasattr(engine, "close"):
            engine.close()
    return schema


def _schema_type(s: dict[str, Any]) -> str:
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_slug(name)})"
    if "anyOf" in s:
        return " or ".join(_schema_type(x) for x in s["anyOf"])
    if s.get("type") == "array":
        return f"array of {_schema_type(s.get('items', {}))}"
    if "enum" in s:
        return " / ".join(f"`{v}`" for v in s["enum"])
    return str(s.get("type", "any"))


def _slug(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def http_api_markdown(schema: dict[str, Any]) -> str:
    out = [schema["info"].get("description", ""), ""]
    out += ["| method | path | what it does |", "|---|---|---|"]
    ops = [(p, m, o) for p, item in schema["paths"].items() for m, o in item.items()]
    for path, method, op in ops:
        out.append(f"| `{method.upper()}` | `{path}` | {_cell(op.get('summary', ''))} |")
    tags: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, method, op in ops:
        tags.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag, items in tags.items():
        out += ["", f"## {tag}", ""]
        for path, method, op in items:
            out += [f"### `{method.upper()} {path}`", "", op.get("summary", ""), ""]
            if op.get("description"):
                out += [op["description"], ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
                for p in params:
                    desc = p.get("description") or p.get("schema", {}).get("description", "")
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                        f"{_cell(_schema_type(p.get('schema', {})))} | {_cell(desc)} |"
                    )
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for ctype, media in body.items():
                out += [f"Request body (`{ctype}`): {_schema_type(media.get('schema', {}))}", ""]
            codes = ", ".join(f"`{c}` {r.get('description', '')}" for c, r in op.get("responses", {}).items())
            out += [f"Responses: {codes}", ""]
    schemas = schema.get("components", {}).get("schemas", {})
    if schemas:
        out += ["", "## Schemas", ""]
        for name, s in schemas.items():
            out += [f'### {name} {{: #{_slug(name)} }}', "", s.get("description", ""), ""]
            props = s.get("properties", {})
            if props:
                req = set(s.get("required", []))
                out += ["| field | type | required | description |", "|---|---|---|---|"]
                for field, fs in props.items():
                    out.append(f"| `{field}` | {_cell(_schema_type(fs))} | {'yes' if field in req else 'no'} | "
                               f"{_cell(fs.get('description', ''))} |")
                out.append("")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def cli_markdown() -> str:
    import typer

    from shopsense.cli import app

    out: list[str] = []

    def walk(cmd: Any, path: list[str]) -> None:
        # duck-typed: typer vendors its own click, so click's classes are not the ones here
        if getattr(cmd, "commands", None):
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], [*path, name])
            return
        if getattr(cmd, "hidden", False):
            return
        out.extend([f"## `shopsense {' '.join(path)}`", "", (cmd.help or "").strip().split("\b")[0].strip(), ""])
        params = [p for p in cmd.params if not getattr(p, "hidden", False)]
        if params:
            out.extend(["| argument or option | help | default |", "|---|---|---|"])
            for p in params:
                if getattr(p, "param_type_name", "") == "option":
                    names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])])
                else:
                    names = f"`{(p.name or '').upper()}`"
                default = p.default
                shown = "" if callable(default) or default in (None, (), [], False) or \
                    type(default).__name__ == "Sentinel" else f"`{default}`"
                out.append(f"| {names} | {_cell(getattr(p, 'help', None) or '')} | {_cell(shown)} |")
            out.append("")

    walk(typer.main.get_command(app), [])
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str | None:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, str) and len(v) <= 60:
        return v
    return None  # nested data stays in the JSON


def benchmark_markdown(results: Path, png_url: dict[str, str]) -> str:
    out: list[str] = []
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        meta = doc.get("_meta", {}) if isinstance(doc.get("_meta"), dict) else {}
        out += [f"## {path.stem}", "", f"Source: `bench/results/{path.name}`"]
        if meta.get("command"):
            out += ["", f"Command: `{_cell(str(meta['command']))}`"]
        for key in ("machine", "date"):
            if isinstance(meta.get(key), str):
                out += ["", f"{key.capitalize()}: {_cell(meta[key])}"]
        protocol = meta.get("protocol")
        if isinstance(protocol, str):
            out += ["", '??? note "Protocol"', "", "    " + protocol.replace("\n", "\n    ")]
        if path.stem in png_url:
            out += ["", f"![{path.stem} plot]({png_url[path.stem]})"]
        for dataset, systems in doc.items():
            if dataset.startswith("_") or not isinstance(systems, dict):
                continue
            rows = {s: m for s, m in systems.items() if not s.startswith("_") and isinstance(m, dict)}
            cols: list[str] = []
            for metrics in rows.values():
                cols += [c for c, v in metrics.items() if c not in cols and _fmt(v) is not None]
            if not rows or not cols:
                continue
            out += ["", f"### {path.stem}: {dataset}", "", "| system | " + " | ".join(cols) + " |",
                    "|---|" + "---|" * len(cols)]
            for system, metrics in rows.items():
                cells = [_fmt(metrics[c]) if c in metrics else "" for c in cols]
                out.append(f"| {_cell(system)} | " + " | ".join(_cell(c or "") for c in cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# the mind map
# ---------------------------------------------------------------------------------------------
def load_mindmap(path: Path = MINDMAP) -> dict[str, Any]:
    """The map's source: a root and two sides (concepts, scenarios) of branches with leaves;
    every leaf names a ``lesson`` (docs path) and a ``module`` (a public name of shopsense)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def leaves(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(side, branch name, leaf) for every leaf of the map."""
    return [(side, b["name"], leaf) for side in ("concepts", "scenarios") for b in spec[side] for leaf in b["leaves"]]


def module_target(name: str) -> tuple[str, str]:
    """(reference page, anchor) of a public name: ``shopsense.search.QueryParser`` ->
    (``reference/python/search.md``, ``shopsense.search.QueryParser``); a name the package
    loads lazily is anchored where it is defined."""
    parts = name.split(".")
    module = ".".join(parts[:2]) if len(parts) > 1 and _init_of(".".join(parts[:2])).exists() else "shopsense"
    lazy = lazy_names(module)
    if len(parts) == 3 and parts[2] in lazy:
        return package_page(module), f"{lazy[parts[2]]}.{parts[2]}"
    return package_page(module), name


_PALETTE = ["#00796b", "#5e35b1", "#e64a19", "#1976d2", "#6d4c41", "#827717", "#c2185b", "#3949ab", "#00838f"]


def mindmap_svg(spec: dict[str, Any], lesson_href: Any, module_href: Any) -> str:
    """An SVG mind map: the root in the middle, concepts on the left, business scenarios on the
    right; each leaf's label links to its lesson and its "API" badge to its module."""
    leaf_h, gap, branch_gap, leaf_w, head_w = 26, 6, 16, 268, 160
    width = 1240
    cx = width / 2
    sides = {"concepts": spec["concepts"], "scenarios": spec["scenarios"]}

    def side_height(branches: list[dict[str, Any]]) -> float:
        return sum(len(b["leaves"]) * (leaf_h + gap) - gap for b in branches) + branch_gap * (len(branches) - 1)

    height = max(side_height(b) for b in sides.values()) + 70
    parts = [
        (f'<svg class="mindmap" viewBox="0 0 {width} {height:.0f}" width="100%" role="img" '
         'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">'),
        f"<title>{html.escape(spec['root'])}</title>",
    ]
    root_w, root_h = 190, 64
    colour = 0
    for side, branches in sides.items():
        sign = -1 if side == "concepts" else 1
        y = (height - side_height(branches)) / 2 + 10
        head_x = cx + sign * (root_w / 2 + 40) - (head_w if sign < 0 else 0)
        leaf_x = head_x - 30 - leaf_w if sign < 0 else head_x + head_w + 30
        parts.append(f'<text x="{(leaf_x if sign < 0 else leaf_x + leaf_w):.0f}" y="22" font-size="15" '
                     f'font-weight="700" text-anchor="{"start" if sign < 0 else "end"}" class="mm-side">'
                     f'{html.escape(spec.get(side + "_title", side.capitalize()))}</text>')
        for b in branches:
            fill = _PALETTE[colour % len(_PALETTE)]
            colour += 1
            n = len(b["leaves"])
            block = n * (leaf_h + gap) - gap
            my = y + block / 2
            # root -> branch
            rx = cx + sign * root_w / 2
            hx = head_x + (head_w if sign < 0 else 0)
            parts.append(f'<path d="M{rx:.0f},{height / 2:.0f} C{(rx + hx) / 2:.0f},{height / 2:.0f} '
                         f'{(rx + hx) / 2:.0f},{my:.0f} {hx:.0f},{my:.0f}" stroke="{fill}" stroke-width="3" fill="none"/>')
            parts.append(f'<rect x="{head_x:.0f}" y="{my - 16:.0f}" width="{head_w}" height="32" rx="16" fill="{fill}"/>')
            parts.append(f'<text x="{head_x + head_w / 2:.0f}" y="{my + 5:.0f}" font-size="14" font-weight="700" '
                         f'fill="#fff" text-anchor="middle">{html.escape(b["name"])}</text>')
            for i, leaf in enumerate(b["leaves"]):
                ly = y + i * (leaf_h + gap)
                ey = ly + leaf_h / 2
                sx = head_x if sign < 0 else head_x + head_w
                ex = leaf_x + leaf_w if sign < 0 else leaf_x
                parts.append(f'<path d="M{sx:.0f},{my:.0f} C{(sx + ex) / 2:.0f},{my:.0f} {(sx + ex) / 2:.0f},{ey:.0f} '
                             f'{ex:.0f},{ey:.0f}" stroke="{fill}" stroke-width="1.5" fill="none" opacity="0.7"/>')
                tip = f"{leaf['label']}: lesson {leaf['lesson']}, code {leaf['module']}"
                parts.append(f'<g class="mm-leaf"><title>{html.escape(tip)}</title>')
                parts.append(f'<rect x="{leaf_x:.0f}" y="{ly:.0f}" width="{leaf_w}" height="{leaf_h}" rx="6" '
                             f'fill="{fill}" fill-opacity="0.12" stroke="{fill}"/>')
                parts.append(f'<a href="{html.escape(lesson_href(leaf["lesson"]))}">'
                             f'<text x="{leaf_x + 8:.0f}" y="{ey + 4.5:.0f}" font-size="13" class="mm-label">'
                             f'{html.escape(leaf["label"])}</text></a>')
                bx = leaf_x + leaf_w - 38
                parts.append(f'<a href="{html.escape(module_href(leaf["module"]))}">'
                             f'<rect x="{bx:.0f}" y="{ly + 4:.0f}" width="32" height="{leaf_h - 8}" rx="4" fill="{fill}"/>'
                             f'<text x="{bx + 16:.0f}" y="{ey + 4:.0f}" font-size="10" font-weight="700" fill="#fff" '
                             f'text-anchor="middle">API</text></a></g>')
            y += block + branch_gap
    parts.append(f'<rect x="{cx - root_w / 2:.0f}" y="{height / 2 - root_h / 2:.0f}" width="{root_w}" '
                 f'height="{root_h}" rx="14" fill="#263238"/>')
    for j, line in enumerate(spec.get("root_lines", [spec["root"]])):
        parts.append(f'<text x="{cx:.0f}" y="{height / 2 - 6 + j * 18 - (len(spec.get("root_lines", [1])) - 2) * 9:.0f}" '
                     f'font-size="14" font-weight="700" fill="#fff" text-anchor="middle">{html.escape(line)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def mindmap_table(spec: dict[str, Any], lesson_link: Any) -> str:
    """The leaves as a Markdown table inside a collapsed block (MkDocs checks these links)."""
    rows = ["| branch | leaf | lesson | code |", "|---|---|---|---|"]
    for _, branch, leaf in leaves(spec):
        short = leaf["module"].removeprefix("shopsense.")
        rows.append(f"| {branch} | {leaf['label']} | {lesson_link(leaf['lesson'])} | "
                    f"[`{short}`][{leaf['module']}] |")
    return '??? info "The map as a table (every leaf, its lesson and its code)"\n\n' + \
        "".join(f"    {r}\n" for r in rows)


# ---------------------------------------------------------------------------------------------
# MkDocs events
# ---------------------------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}


def on_config(config: Any) -> Any:
    """Snippets read from the repository root; the nav gains one page per package."""
    mdx = config.mdx_configs.setdefault("pymdownx.snippets", {})
    mdx["base_path"] = [str(ROOT)]
    pages = [{m: package_page(m)} for m, _ in packages()]

    def expand(items: list[Any]) -> list[Any]:
        out = []
        for item in items:
            if isinstance(item, dict):
                (title, value), = item.items()
                if value == f"{PY_REF}/index.md":
                    out.append({title: [f"{PY_REF}/index.md", *pages]})
                    continue
                if isinstance(value, list):
                    item = {title: expand(value)}
            out.append(item)
        return out

    config.nav = expand(config.nav)
    return config


def on_files(files: Files, config: Any) -> Files:
    for module, names in packages():
        files.append(File.generated(config, package_page(module), content=python_page(module, names)))
    schema = openapi_schema()
    _CACHE["openapi"] = schema
    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(schema, indent=1)))
    for png in sorted(BENCH.glob("*.png")):
        files.append(File.generated(config, f"assets/bench/{png.name}", abs_src_path=str(png)))
    return files


_MARKER = re.compile(r"<!-- generated:([a-z-]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def rel(path: str) -> str:
        """The URL of docs file ``path`` from this page (for raw HTML, which MkDocs leaves alone)."""
        target = files.get_file_from_path(path)
        if target is None:
            raise ValueError(f"{page.file.src_uri}: no page {path!r}")
        return target.url_relative_to(page.file)

    def doc_rel(path: str) -> str:
        """Docs file ``path`` relative to this page's source (for Markdown links, which MkDocs checks)."""
        return posixpath.relpath(path, posixpath.dirname(page.file.src_uri) or ".")

    def fill(m: re.Match[str]) -> str:
        kind = m.group(1)
        if kind == "settings":
            return settings_table()
        if kind == "http-api":
            return http_api_markdown(_CACHE.get("openapi") or openapi_schema())
        if kind == "cli":
            return cli_markdown()
        if kind == "benchmarks":
            pngs = {p.stem: doc_rel(f"assets/bench/{p.name}") for p in BENCH.glob("*.png")}
            return benchmark_markdown(BENCH, pngs)
        if kind == "mindmap":
            spec = load_mindmap()

            def lesson_link(lesson: str) -> str:
                return f"[{lesson.rsplit('/', 1)[-1].removesuffix('.md')}]({doc_rel(lesson)})"

            def module_href(name: str) -> str:
                page_path, anchor = module_target(name)
                return f"{rel(page_path)}#{anchor}"

            svg = mindmap_svg(spec, rel, module_href)
            return f'<div class="mindmap-wrap" markdown="0">\n{svg}\n</div>\n\n' + mindmap_table(spec, lesson_link)
        raise ValueError(f"{page.file.src_uri}: unknown generated block {kind!r}")

    return _MARKER.sub(fill, markdown)
