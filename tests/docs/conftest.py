"""The docs and the course: lesson scripts loaded by path, throwaway homes under tmp_path."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
LESSONS = DOCS / "lessons"


def load_path(path: Path, name: str) -> ModuleType:
    """Import a file that is not on a package path (a lesson script, the docs hook)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lesson(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """``lesson("01_catalogue")`` -> the script as a module; its homes go under tmp_path."""
    monkeypatch.syspath_prepend(str(LESSONS))  # the scripts import their shared _course.py
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def load(stem: str) -> ModuleType:
        return load_path(LESSONS / f"{stem}.py", f"lesson_{stem}")

    return load


@pytest.fixture(scope="session")
def hook() -> ModuleType:
    """docs/_hooks/gen_pages.py, the MkDocs hook that generates the reference pages."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    return load_path(DOCS / "_hooks" / "gen_pages.py", "shopsense_docs_hook")
