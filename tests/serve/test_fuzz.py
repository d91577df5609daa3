"""Property-based fuzz of the API against its own OpenAPI schema: no 5xx, ever.

Bounded (a few examples per operation) so it runs in well under a minute.
Operations whose capability is not in the tree yet are skipped with the reason.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings

from .conftest import has_capability

NEEDS = {"/users/{user_id}/recommendations": "recommend", "/items/{item_id}/similar": "recommend",
         "/items/{item_id}/complements": "bundles", "/items/{item_id}/substitutes": "bundles",
         "/carts/complete": "bundles",
         "/bundles": "bundles", "/search": "search"}
EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzz_app(built_home, tmp_path_factory):  # type: ignore[no-untyped-def]
    import shutil

    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app

    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(built_home, home)
    # a generous rate limit: the fuzz is about input handling, limits have their own test
    app = create_app(Settings.load(home, rate_limit_per_minute=1_000_000), warm=False)
    with TestClient(app):
        app.state.fuzz_key = app.state.shopsense.keys.create("write", name="fuzz")
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def test_every_route_is_fuzzed(api_schema):
    """The list below and the console's (tests/insights/test_fuzz.py) cover every operation in
    the schema (a new route must be added to one of them)."""
    from tests.insights.test_fuzz import OPERATIONS as CONSOLE

    ops = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert ops == set(OPERATIONS) | set(CONSOLE)


OPERATIONS = [
    ("GET", "/search"), ("GET", "/users/{user_id}/recommendations"), ("DELETE", "/users/{user_id}"),
    ("GET", "/items/{item_id}"), ("GET", "/items/{item_id}/similar"),
    ("GET", "/items/{item_id}/complements"), ("GET", "/items/{item_id}/substitutes"),
    ("POST", "/carts/complete"), ("POST", "/bundles"),
    ("POST", "/events"), ("POST", "/products"), ("GET", "/health"), ("GET", "/metrics"),
    ("GET", "/stats"), ("GET", "/bench/results"), ("GET", "/storefront/config"),
    ("GET", "/livez"), ("GET", "/readyz"), ("POST", "/assistant"), ("GET", "/assistant/policies/{name}"),
]


@pytest.mark.parametrize("method,path", OPERATIONS)
def test_no_server_errors(api_schema, fuzz_app, method, path):  # type: ignore[no-untyped-def]
    cap = NEEDS.get(path)
    if cap and not has_capability(cap):
        pytest.skip(f"shopsense.{cap} service is not in the tree yet")
    op = api_schema[path][method]
    key = fuzz_app.state.fuzz_key

    @given(case=op.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):  # type: ignore[no-untyped-def]
        response = case.call(headers={"X-API-Key": key}, timeout=120)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
        if 400 <= response.status_code < 500:
            body = response.json()  # bad input comes back in our error shape
            assert body["message"] and body["error"]

    check()
