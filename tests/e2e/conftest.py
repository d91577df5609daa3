"""Fixtures for the storefront tests on the bundled demo (what ``make demo`` serves).

- ``demo_home``: the demo catalogue and histories ingested, indexed and trained once,
  cached under ``test-artifacts/cache/`` by a hash of the demo files and the package
  source (``SHOPSENSE_E2E_DEMO_HOME`` names a ready home to use instead); every session
  serves a copy, so the events the tests send never reach the cache.
- ``demo_server``: ``shopsense serve --demo`` on a free port over that copy.
- ``browser``: headless Debian Chromium through Playwright; tests open their own
  context (fresh storage) with :func:`open_page`.
- :func:`axe`: axe-core from npm (``tests/e2e/node_modules``, installed by
  ``scripts/install-browser.sh``).

Screenshots go to ``test-artifacts/storefront/`` (gitignored, kept as artefacts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser import REPO, chromium, new_page, serving

SHOTS = REPO / "test-artifacts" / "storefront"
CACHE = REPO / "test-artifacts" / "cache"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
#: how long a page waits for an element (a loaded 2-core machine needs minutes for the first
#: answers; set lower to see failures quickly)
TIMEOUT_MS = int(os.environ.get("SHOPSENSE_E2E_TIMEOUT_MS", "120000"))


def _demo_key() -> str:
    """Hash of the demo files and of the package source: a changed model, index or
    ingest path rebuilds the cached home."""
    from shopsense.datasets import demo_paths

    h = hashlib.blake2b(digest_size=12)
    for p in sorted(p for ps in demo_paths().values() for p in ps):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    for p in sorted((REPO / "src" / "shopsense").rglob("*.py")):
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _build_demo(home: Path) -> None:
    from shopsense.datasets import demo_paths
    from shopsense.engine import Engine

    paths = demo_paths()
    with Engine(home) as eng:  # what `shopsense demo` does, without the server
        for p in paths["products"]:
            eng.ingest_products(p)
        for p in paths["events"]:
            eng.ingest_events(p)
        eng.build_index()
        eng.train()


@pytest.fixture(scope="session")
def demo_home() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    given = os.environ.get("SHOPSENSE_E2E_DEMO_HOME")
    if given:
        return Path(given)
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("fastapi")
    home = CACHE / f"demo-home-{_demo_key()}"
    if not (home / ".complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        for old in CACHE.glob("demo-home-*"):  # one cached home at a time
            shutil.rmtree(old, ignore_errors=True)
        _build_demo(home)
        (home / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    return home


@pytest.fixture(scope="session")
def demo_server(demo_home: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("shop") / "home"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns(".complete"))
    with serving(home, tmp_path_factory.mktemp("shop-log") / "server.log", timeout=600) as base:
        yield base


# module scope: Playwright's sync API allows one instance per thread, and while one is open
# asyncio.run() fails, so other modules' browsers and asyncio tests must not overlap with it
@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as b:
        yield b


def open_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    """A page in a fresh context (empty cart, no history) that records page errors."""
    return new_page(browser, width, height, TIMEOUT_MS)


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def axe(page: Any, name: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (the whole
    report is written next to the screenshots)."""
    if not AXE.exists():
        if not (shutil.which("node") and shutil.which("npm")):
            pytest.skip("node/npm not found: axe-core cannot be installed (scripts/install-browser.sh)")
        pytest.skip(f"axe-core not installed at {AXE}: run scripts/install-browser.sh (npm install in tests/e2e)")
    page.add_script_tag(path=str(AXE))
    report = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})")
    (SHOTS / f"axe-{name}.json").write_text(json.dumps(
        {k: report[k] for k in ("violations", "incomplete", "url")}, indent=1))
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in report["violations"] if v["impact"] in ("serious", "critical")]
