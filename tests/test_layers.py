"""One direction of dependency: the import graph of ``shopsense`` must be layered.

Layers, bottom to top (a layer may import only from layers below it)::

    core    errors, config, results, home, context, metrics, llm   (no shopsense imports above core)
    stages  catalog, store, text, search, recommend, bundles, rerank, tune
    engine  engine                                            (composes the stages)
    top     eval, serve, cli, datasets                        (drive the engine)

Besides the layer rules there must be no import cycle, neither between modules nor between
top-level units (a subpackage, or a single top-level module), and nobody outside a package may
import its underscore modules or underscore names (tests and benchmarks included).

Imports are read with ``ast``: module-level and nested (function/class) imports alike, relative
imports resolved. Imports under ``if TYPE_CHECKING:`` are skipped: they never execute, so they
create no runtime dependency (``context.py`` uses them to name stage types).
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PKG = "shopsense"

CORE = ("errors", "config", "results", "home", "context", "metrics", "llm")
STAGES = ("catalog", "store", "text", "search", "recommend", "bundles", "rerank", "tune", "jobs", "insights",
          "assist")
ENGINE = ("engine",)
TOP = ("eval", "serve", "cli", "datasets")
# unit -> units it must not import (anything under them included)
FORBIDDEN = {
    **{unit: STAGES + ENGINE + TOP for unit in CORE},
    **{unit: ENGINE + TOP for unit in STAGES},
}

Edges = dict[str, dict[str, str]]  # module -> imported module -> "file:line" of the first import


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse)  # the TYPE_CHECKING body never runs
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(ast.iter_child_nodes(node))


def _is_module(src: Path, dotted: str) -> bool:
    path = src.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def module_name(path: Path, base: Path) -> tuple[str, bool]:
    """Dotted name of ``path`` relative to ``base``, and whether it is a package ``__init__``."""
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def imports(path: Path, base: Path, src: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) per imported thing; ``name`` is None when a module is imported.

    ``from a import b`` yields module ``a.b`` when ``a/b.py`` or ``a/b/`` exists under ``src``.
    """
    modname, is_pkg = module_name(path, base)
    out: list[tuple[int, str, str | None]] = []
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, None) for alias in node.names]
            continue
        mod = node.module or ""
        if node.level:
            parts = modname.split(".")[: None if is_pkg else -1]
            parts = parts[: len(parts) - node.level + 1]
            mod = ".".join(parts + ([mod] if mod else []))
        for alias in node.names:
            sub = f"{mod}.{alias.name}"
            if alias.name != "*" and _is_module(src, sub):
                out.append((node.lineno, sub, None))
            else:
                out.append((node.lineno, mod, None if alias.name == "*" else alias.name))
    return out


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _files(src: Path, pkg: str) -> list[Path]:
    return sorted((src / pkg).rglob("*.py"))


def module_edges(src: Path, pkg: str) -> Edges:
    """Import graph of ``pkg`` under ``src``, with the implied imports of parent packages.

    ``import pkg.a.b`` also runs ``pkg/a/__init__``; that implied edge is left out when the
    importer lives inside ``pkg.a`` (the parent is already importing then, as is ``pkg`` itself
    for every module). An explicit import of a parent package always counts.
    """
    edges: Edges = {}
    for path in _files(src, pkg):
        mod, _ = module_name(path, src)
        out = edges.setdefault(mod, {})
        for line, target, _name in imports(path, src, src):
            if target != pkg and not target.startswith(pkg + "."):
                continue
            where = f"{_rel(path)}:{line}"
            parts = target.split(".")
            parents = [".".join(parts[:i]) for i in range(1, len(parts))]
            implied = [p for p in parents if mod != p and not mod.startswith(p + ".")]
            for dst in [target, *implied]:
                if dst != mod:
                    out.setdefault(dst, where)
    return edges


def unit(module: str, pkg: str) -> str:
    """The top-level unit: ``pkg.search._service`` -> ``pkg.search``; ``pkg`` stays ``pkg``."""
    return ".".join(module.split(".")[:2]) if module.startswith(pkg + ".") else module


def package_edges(edges: Edges, pkg: str) -> Edges:
    out: Edges = {}
    for src_mod, targets in sorted(edges.items()):
        row = out.setdefault(unit(src_mod, pkg), {})
        for dst, where in targets.items():
            if unit(dst, pkg) != unit(src_mod, pkg):
                row.setdefault(unit(dst, pkg), f"{where} ({src_mod} -> {dst})")
    return out


def _sccs(edges: Edges) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _shortest_cycle(edges: Edges, start: str, comp: set[str]) -> list[str]:
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(edges.get(v, {})):
            if w == start:
                chain = [v]
                while chain[-1] != start:
                    chain.append(prev[chain[-1]])
                return [*reversed(chain), start]
            if w in comp and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def cycles(edges: Edges) -> list[str]:
    """Readable cycles: per strongly connected component, shortest cycles covering its nodes."""
    out = []
    for comp in _sccs(edges):
        left = list(comp)
        while left:
            chain = _shortest_cycle(edges, left[0], set(comp))
            hops = [f"{a} ({edges[a][b]})" for a, b in itertools.pairwise(chain)]
            out.append(" -> ".join([*hops, chain[-1]]))
            left = [m for m in left if m not in chain]
    return out


def forbidden(edges: Edges, pkg: str) -> list[str]:
    out: set[tuple[str, int, str]] = set()
    for src_mod, targets in edges.items():
        banned = {f"{pkg}.{u}" for u in FORBIDDEN.get(unit(src_mod, pkg).split(".")[-1], ())}
        for dst, where in targets.items():
            if unit(dst, pkg) in banned:  # one line per import: the deepest module it reaches
                deeper = [d for d, w in targets.items() if w == where and d.startswith(dst + ".")]
                file, line = where.rsplit(":", 1)
                out.add((file, int(line), f"{src_mod} -> {max([dst, *deeper], key=len)}"))
    return [f"{file}:{line}: {edge}" for file, line, edge in sorted(out)]


def _owner(parts: list[str], i: int, pkg: str) -> str:
    """Package owning ``parts[i]``; a top-level module of ``pkg`` is its own owner."""
    owner = ".".join(parts[:i])
    return owner if owner != pkg else ".".join(parts[: i + 1])


def private_imports(files: list[Path], base: Path, src: Path, pkg: str) -> list[str]:
    """Imports of another package's underscore modules or underscore names, one per statement."""
    found: dict[tuple[str, int, str, str], list[str]] = {}
    for path in files:
        mod, _ = module_name(path, base)
        for line, target, name in imports(path, base, src):
            if target != pkg and not target.startswith(pkg + "."):
                continue
            parts = target.split(".")
            owners = [_owner(parts, i, pkg) for i, p in enumerate(parts) if p.startswith("_")]
            if name and name.startswith("_") and not name.startswith("__"):
                is_pkg = src.joinpath(*parts).is_dir()
                owners.append(target if is_pkg else _owner(parts, len(parts) - 1, pkg))
            if any(mod != o and not mod.startswith(o + ".") for o in owners):
                found.setdefault((_rel(path), line, mod, target), []).extend([name] if name else [])
    return [
        f"{file}:{line}: {mod} -> {target}" + (f" ({', '.join(names)})" if names else "")
        for (file, line, mod, target), names in sorted(found.items())
    ]


def _report(title: str, found: list[str]) -> str:
    return f"{len(found)} {title}:\n  " + "\n  ".join(found)


def test_no_module_cycles():
    found = cycles(module_edges(SRC, PKG))
    assert not found, _report("module import cycle(s)", found)


def test_no_package_cycles():
    found = cycles(package_edges(module_edges(SRC, PKG), PKG))
    assert not found, _report("cycle(s) between top-level units", found)


def test_layers_point_one_way():
    found = forbidden(module_edges(SRC, PKG), PKG)
    assert not found, _report("forbidden import(s) against the layering", found)


def test_no_private_imports_across_packages():
    found = private_imports(_files(SRC, PKG), SRC, SRC, PKG)
    assert not found, _report("private import(s) across package boundaries", found)


#: files allowed to reach into one package's private modules, each with its reason; keep short
INSTRUMENTS_INTERNALS = {
    # count and time the memoised neighbour / k-means / EASE fits by patching the module functions
    "tests/bundles/test_neighbors.py": "shopsense.bundles",
    "bench/baskets_scale.py": "shopsense.bundles",
}


def test_tests_and_bench_use_public_api():
    files = sorted(p for d in ("tests", "bench") for p in (REPO / d).rglob("*.py"))
    found = [f for f in private_imports(files, REPO, SRC, PKG)
             if not any(f.startswith(path + ":") and f" -> {pkg}." in f
                        for path, pkg in INSTRUMENTS_INTERNALS.items())]
    assert not found, _report("private import(s) of shopsense in tests/ and bench/", found)


def test_checker_catches_violations(tmp_path):
    """A tiny fake tree with one violation of each kind, and a TYPE_CHECKING import to skip."""
    files = {
        "__init__.py": "",
        "engine.py": "from fakepkg import search\n",
        "errors.py": "import typing\nif typing.TYPE_CHECKING:\n    import fakepkg.engine\n",
        "a.py": "def f():\n    from . import b\n",
        "b.py": "import fakepkg.a\n",
        "search/__init__.py": "from ._x import run\nfrom ._y import y\n",
        "search/_x.py": "from ._y import y\ndef run():\n    from fakepkg.engine import E\n",
        "search/_y.py": "def y():\n    from fakepkg.search import run\n",  # parent __init__
        "bundles/__init__.py": "from fakepkg.search._x import run\n"
        "from fakepkg.search import _helper\n",
    }
    for name, code in files.items():
        (tmp_path / "fakepkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fakepkg" / name).write_text(code)
    edges = module_edges(tmp_path, "fakepkg")
    mod_cycles = cycles(edges)
    assert len(mod_cycles) == 3, mod_cycles
    assert any("fakepkg.a (" in c and "fakepkg.b (" in c for c in mod_cycles), mod_cycles
    assert any("fakepkg.search._x (" in c and "fakepkg.engine (" in c for c in mod_cycles)
    assert any(c.startswith("fakepkg.search._y (") for c in mod_cycles), mod_cycles
    pkg_cycles = sorted(c.split(" (")[0] for c in cycles(package_edges(edges, "fakepkg")))
    assert pkg_cycles == ["fakepkg.a", "fakepkg.engine"], pkg_cycles
    bad = forbidden(edges, "fakepkg")
    assert len(bad) == 1 and bad[0].endswith("fakepkg.search._x -> fakepkg.engine"), bad
    private = private_imports(_files(tmp_path, "fakepkg"), tmp_path, tmp_path, "fakepkg")
    assert [p.split(": ")[1] for p in private] == [
        "fakepkg.bundles -> fakepkg.search._x (run)",
        "fakepkg.bundles -> fakepkg.search (_helper)",
    ], private
