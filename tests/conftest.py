"""Shared fixtures: the real datasets beside the repo, and fresh engine homes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SHOPSENSE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    if not DATASETS.exists():
        pytest.skip(f"real datasets not found at {DATASETS} (set SHOPSENSE_DATASETS)")
    return DATASETS


@pytest.fixture
def engine(tmp_path):
    from shopsense import Engine

    eng = Engine(tmp_path / "home")
    yield eng
    eng.close()
