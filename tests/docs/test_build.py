"""The documentation site builds with ``mkdocs build --strict`` (any warning fails), offline,
and its generated pages hold what the code holds: every setting, every HTTP operation, every
benchmark file, one reference page per package, a mind map whose links all resolve."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from tests.docs.conftest import REPO


@pytest.fixture(scope="module")
def site(tmp_path_factory, hook) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    return out


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        for key in ("href", "src"):
            if a.get(key):
                self.links.append((tag, a[key] or ""))


def parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def test_loads_nothing_from_outside(site):  # type: ignore[no-untyped-def]
    """No script, style sheet, font or image from another host on any page."""
    outside = []
    for html_file in site.rglob("*.html"):
        for tag, url in parse(html_file.read_text(encoding="utf-8")).links:
            if tag in ("script", "link", "img", "source") and urlparse(url).scheme in ("http", "https"):
                outside.append((html_file.relative_to(site).as_posix(), url))
    assert not outside, outside[:10]
    assert (site / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000
    assert "fonts.googleapis" not in page(site, "").lower()


def test_mind_map_links_resolve(site, hook):  # type: ignore[no-untyped-def]
    """Every leaf of the SVG links to a lesson page and to an anchor of the Python reference."""
    html = page(site, "mindmap")
    start = html.index('<svg class="mindmap"')
    svg = html[start: html.index("</svg>", start)]
    hrefs = re.findall(r'<a href="([^"]+)"', svg)
    spec = hook.load_mindmap()
    assert len(hrefs) == 2 * len(hook.leaves(spec))
    base = "http://site/mindmap/"
    for href in hrefs:
        url = urlparse(urljoin(base, href))
        target = site / unquote(url.path).lstrip("/") / "index.html"
        assert target.is_file(), f"{href} -> {target} does not exist"
        if url.fragment:
            assert url.fragment in parse(target.read_text(encoding="utf-8")).ids, f"no anchor for {href}"


def test_configuration_page_lists_every_setting(site):  # type: ignore[no-untyped-def]
    from shopsense import Settings

    html = page(site, "reference/configuration")
    for name in Settings.model_fields:
        assert f"SHOPSENSE_{name.upper()}" in html, name


def test_http_page_lists_every_operation(site):  # type: ignore[no-untyped-def]
    schema = json.loads((site / "reference" / "openapi.json").read_text(encoding="utf-8"))
    html = page(site, "reference/http-api")
    for path, ops in schema["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}" in html, (method, path)


def test_benchmarks_page_has_every_result_and_plot(site):  # type: ignore[no-untyped-def]
    html = page(site, "benchmarks")
    for result in sorted((REPO / "bench" / "results").glob("*.json")):
        assert f"bench/results/{result.name}" in html, result.name
    for png in sorted((REPO / "bench" / "results").glob("*.png")):
        assert (site / "assets" / "bench" / png.name).is_file(), png.name
        assert f"assets/bench/{png.name}" in html, png.name


def test_every_package_has_a_reference_page(site, hook):  # type: ignore[no-untyped-def]
    """Every public class and function has its own anchor on its package's page (where it is
    defined, for names a package loads lazily)."""
    import importlib
    import inspect

    for module, names in hook.packages():
        ids = parse(page(site, hook.package_page(module).removesuffix(".md"))).ids
        lazy = hook.lazy_names(module)
        mod = importlib.import_module(module)
        public = [n for n in names if n not in lazy
                  and (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))]
        missing = [n for n in public if f"{module}.{n}" not in ids]
        missing += [n for n in lazy if n in names and f"{lazy[n]}.{n}" not in ids]
        assert not missing, (module, missing)


def test_lesson_pages_show_their_scripts(site):  # type: ignore[no-untyped-def]
    for script in sorted((REPO / "docs" / "lessons").glob("[0-9][0-9]_*.py")):
        number, name = script.stem.split("_", 1)
        text = re.sub(r"<[^>]+>", "", page(site, f"course/{number}-{name}"))  # highlighted code as text
        assert "def exercise_check(" in text and "def main(" in text, script.name
