"""A small engine home from a real slice of Amazon Office (products + user histories)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
OFFICE = DATASETS / "rec" / "amazon-office"

N_USERS = 40  # ~330 products, ~400 events: builds in seconds on a quiet machine


SERVICES = {"search": ("shopsense.search", "SearchService"),
            "recommend": ("shopsense.recommend", "RecommendService"),
            "bundles": ("shopsense.bundles", "BundleService")}


def has_capability(name: str) -> bool:
    """True when another helper's service (search, recommend, bundles) is in the tree."""
    module, cls = SERVICES[name]
    try:
        return hasattr(importlib.import_module(module), cls)
    except ImportError:
        return False


def needs(name: str):  # type: ignore[no-untyped-def]
    module, cls = SERVICES[name]
    return pytest.mark.skipif(not has_capability(name),
                              reason=f"{module}.{cls} is not in the tree yet")


def office_slice(n_users: int = N_USERS):  # type: ignore[no-untyped-def]
    """Events of the first ``n_users`` Office users and the products they touched."""
    if not OFFICE.exists():
        pytest.skip(f"Amazon Office dataset not found at {OFFICE}")
    from shopsense.datasets import load_office_events, load_office_products

    events = load_office_events("purchase", limit_users=n_users)
    used = {e.item_id for e in events}
    products = [p for p in load_office_products() if p.id in used]
    return products, events


@pytest.fixture(scope="session")
def office_data():  # type: ignore[no-untyped-def]
    return office_slice()


@pytest.fixture(scope="session")
def built_home(tmp_path_factory, office_data):  # type: ignore[no-untyped-def]
    """A home with the slice stored, and indexes/models built where the capability exists."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("serve_home")
    products, events = office_data
    with Engine(home) as eng:
        eng.add_products(products)
        eng.add_events(events)
        if has_capability("search"):
            eng.build_index()
        if has_capability("recommend"):
            eng.train()
    return home


@pytest.fixture()
def home(built_home, tmp_path):  # type: ignore[no-untyped-def]
    """A private copy per test, so writes and deletions never leak between tests."""
    import shutil

    dst = tmp_path / "home"
    shutil.copytree(built_home, dst)
    return dst


def _make_client(home: Path, **app_kwargs):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app

    overrides = app_kwargs.pop("settings", {})
    app = create_app(Settings.load(home, **overrides), **app_kwargs)
    return TestClient(app)


@pytest.fixture()
def make_client():  # type: ignore[no-untyped-def]
    """``make_client(home, **create_app_kwargs)``; ``settings={...}`` overrides Settings."""
    return _make_client


@pytest.fixture()
def client(home):  # type: ignore[no-untyped-def]
    with _make_client(home, warm=False) as c:
        yield c


@pytest.fixture()
def write_key(client) -> str:  # type: ignore[no-untyped-def]
    return client.app.state.shopsense.keys.create("write", name="test-writer")


@pytest.fixture()
def read_key(client) -> str:  # type: ignore[no-untyped-def]
    return client.app.state.shopsense.keys.create("read", name="test-reader")
