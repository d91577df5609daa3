"""Property-based fuzz of the console's API (exposures, analytics, merchandising,
experiments, privacy) against its own OpenAPI schema: no 5xx, errors in the API's shape."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("sentence_transformers")
from hypothesis import HealthCheck, given, settings

from tests.insights.conftest import demo_products

EXAMPLES = 8

OPERATIONS = [
    ("POST", "/exposures"), ("GET", "/analytics/summary"), ("GET", "/analytics/{table}"),
    ("GET", "/privacy/users/{user_id}/export"), ("POST", "/privacy/retention"),
    ("GET", "/merchandising/rules"), ("PUT", "/merchandising/rules/{name}"),
    ("DELETE", "/merchandising/rules/{name}"), ("PUT", "/merchandising/out-of-stock"),
    ("GET", "/merchandising/synonyms"), ("PUT", "/merchandising/synonyms"), ("GET", "/merchandising/preview"),
    ("POST", "/merchandising/preview"), ("GET", "/experiments"), ("POST", "/experiments"),
    ("GET", "/experiments/{name}"), ("GET", "/experiments/{name}/report"), ("POST", "/experiments/{name}/stop"),
    ("GET", "/experiments/{name}/search"),
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.engine import Engine
    from shopsense.insights import ExperimentBook
    from shopsense.serve import create_app

    home = tmp_path_factory.mktemp("fuzz_console")
    with Engine(home) as eng:
        eng.add_products(demo_products()[:200])
        eng.build_index()
    ExperimentBook(home).create({"name": "e1", "variants": [{"name": "A"}, {"name": "B", "search": {"mode": "bm25"}}]})
    app = create_app(Settings.load(home, rate_limit_per_minute=1_000_000), warm=False)
    with TestClient(app):
        app.state.fuzz_key = app.state.shopsense.keys.create("write", name="fuzz")
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def test_the_console_operations_are_in_the_schema(api_schema) -> None:  # type: ignore[no-untyped-def]
    ops = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= ops


@pytest.mark.parametrize("method,path", OPERATIONS)
def test_no_server_errors(api_schema, fuzz_app, method, path) -> None:  # type: ignore[no-untyped-def]
    op = api_schema[path][method]
    key = fuzz_app.state.fuzz_key

    @given(case=op.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):  # type: ignore[no-untyped-def]
        response = case.call(headers={"X-API-Key": key}, timeout=120)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
        if 400 <= response.status_code < 500:
            body = response.json()
            assert body["message"] and body["error"]

    check()
