from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "catalog.jsonl"
DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def fixture_products() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def fixture_path() -> Path:
    return FIXTURE


@pytest.fixture()
def fixture_rows() -> list[dict]:
    return fixture_products()


@pytest.fixture(scope="session")
def products() -> list:
    from shopsense.catalog import Product

    return [Product.model_validate(p) for p in fixture_products()]


@pytest.fixture(scope="session")
def built_engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An engine over the fixture catalogue with its search index built once."""
    pytest.importorskip("sentence_transformers")
    from shopsense.engine import Engine

    eng = Engine(tmp_path_factory.mktemp("search_home"))
    eng.add_products(fixture_products())
    eng.build_index()
    yield eng
    eng.close()
