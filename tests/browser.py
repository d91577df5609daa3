"""What every browser test shares: a real ``shopsense serve`` on a free port over a home,
and headless Debian Chromium through Playwright's sync API.

Playwright's sync API allows one instance per thread at a time, and while one is open
``asyncio.run`` fails in that thread: open browsers with :func:`chromium` in a fixture of
module scope at most, never for the whole session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def need_browser() -> Any:
    """Playwright's sync API, or a skip naming what is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: run scripts/install-browser.sh")
    return pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, log_path: Path, *, extra: Sequence[str] = (), timeout: float = 300.0) -> Iterator[str]:
    """``shopsense serve --demo`` over ``home`` until the block ends; yields its base URL.
    The benchmark charts come from the repository's ``bench/results``."""
    httpx = pytest.importorskip("httpx")
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from shopsense.cli import main; main()", "serve", "--home", str(home),
             "--port", str(port), "--demo", "--bench-dir", str(REPO / "bench" / "results"), *extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        try:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited: {log_path.read_text()[-3000:]}")
                if time.time() > deadline:
                    pytest.fail(f"server did not start in {timeout:.0f} s: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser until the block ends."""
    api = need_browser()
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, width: int = 1280, height: int = 900, timeout_ms: int = 120_000) -> Any:
    """A page in a fresh context (empty storage) whose ``errors`` lists the page's errors."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page
