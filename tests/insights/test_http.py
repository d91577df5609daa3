"""The console's HTTP API: exposures in, analytics out (admin key, aggregates only, CSV
with DP noise), merchandising rules written to the CLI's file and seen by /search,
experiments served, reported and stopped, a user's export and retention."""

from __future__ import annotations

import csv
import io
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sentence_transformers")

from tests.insights.conftest import demo_products


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("console_home")
    with Engine(home) as eng:
        eng.add_products(demo_products()[:300])
        eng.add_events([{"user_id": f"s{i}", "item_id": f"office-{i}", "type": "purchase",
                         "timestamp": time.time() - 86400 * (1 + i % 5)} for i in range(40)])
        eng.build_index()
    return home


@pytest.fixture()
def client(built, tmp_path):  # type: ignore[no-untyped-def]
    import shutil

    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app

    home = tmp_path / "home"
    shutil.copytree(built, home)
    app = create_app(Settings.load(home, analytics_epsilon=1.0), warm=False)
    with TestClient(app) as c:
        c.key = app.state.shopsense.keys.create("write", name="owner")  # type: ignore[attr-defined]
        c.home = home  # type: ignore[attr-defined]
        yield c


def _h(c) -> dict:  # type: ignore[no-untyped-def]
    return {"X-API-Key": c.key}


def test_exposures_in_analytics_out(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/search", params={"q": "stapler", "k": 5}).json()
    assert res["surface"] == "search" and len(res["list_id"]) == 32
    lid, ids = res["list_id"], [h["id"] for h in res["hits"]]
    body = [{"kind": "impression", "list_id": lid, "user_id": "shopper-1", "surface": "search", "query": "stapler",
             "items": ids, "n_results": res["total"], "session_id": "s1"},
            {"kind": "click", "list_id": lid, "user_id": "shopper-1", "surface": "search", "item_id": ids[1],
             "position": 2, "session_id": "s1"}]
    assert client.post("/exposures", json=body).status_code == 401  # a key is needed
    assert client.post("/exposures", json=body, headers=_h(client)).json() == {"received": 2, "stored": 2}
    assert client.get("/analytics/top-queries").status_code == 401
    top = client.get("/analytics/top-queries", headers=_h(client)).json()["rows"]
    assert top[0]["query"] == "stapler" and top[0]["clicks"] == 1 and top[0]["ctr"] == 1.0
    pos = client.get("/analytics/positions", headers=_h(client)).json()["rows"]
    assert pos[1]["clicks"] == 1
    day = time.strftime("%Y-%m-%d", time.gmtime())
    daily = client.get("/analytics/daily", params={"since": day, "until": day}, headers=_h(client)).json()["rows"]
    assert daily[-1]["searches"] == 1
    assert "shopper-1" not in client.get("/analytics/summary", headers=_h(client)).text
    r = client.get("/analytics/top-queries", params={"format": "csv"}, headers=_h(client))
    assert r.headers["content-type"].startswith("text/csv") and "epsilon=1.0" in r.headers["X-Differential-Privacy"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["query"] == "stapler" and "ctr" not in rows[0]  # noisy counts, no exact rates
    assert client.get("/analytics/nope", headers=_h(client)).status_code == 422


def test_merchandising_rule_reaches_search_and_the_cli_file(client) -> None:  # type: ignore[no-untyped-def]
    from shopsense.rerank import load_rules

    before = [h["id"] for h in client.get("/search", params={"q": "stapler", "k": 5}).json()["hits"]]
    last = before[-1]
    rule = {"action": "pin", "position": 1, "match": {"ids": [last]}, "queries": ["stapler"]}
    assert client.put("/merchandising/rules/pin-last", json=rule).status_code == 401
    prev = client.post("/merchandising/preview", json={"query": "stapler", "k": 5, "rule": rule},
                       headers=_h(client)).json()
    assert prev["after"][0]["id"] == last and prev["after"][0]["was"] == 5 and prev["before"][0]["id"] == before[0]
    out = client.put("/merchandising/rules/pin-last", json=rule, headers=_h(client)).json()
    assert [r["name"] for r in out["rules"]] == ["pin-last"]
    assert load_rules(client.home).rules[0].match.ids == [last]  # the file `shopsense rules` reads
    assert client.get("/search", params={"q": "stapler", "k": 5}).json()["hits"][0]["id"] == last
    off = client.put("/merchandising/rules/pin-last", json={**rule, "enabled": False}, headers=_h(client)).json()
    assert off["rules"][0]["enabled"] is False
    assert client.get("/search", params={"q": "stapler", "k": 5}).json()["hits"][0]["id"] == before[0]
    bad = client.put("/merchandising/rules/x", json={"action": "pin", "match": {"ids": ["a"]}}, headers=_h(client))
    assert bad.status_code == 422 and "position" in bad.text
    assert client.delete("/merchandising/rules/pin-last", headers=_h(client)).json()["rules"] == []
    syn = client.get("/merchandising/synonyms", headers=_h(client)).json()
    assert syn["own"] is False and syn["lines"]


def test_experiment_ab_and_interleaving(client) -> None:  # type: ignore[no-untyped-def]
    exp = {"name": "lexical", "variants": [{"name": "A"}, {"name": "B", "search": {"mode": "bm25"}}],
           "holdout": 0.1}
    assert client.post("/experiments", json=exp).status_code == 401
    assert client.post("/experiments", json=exp, headers=_h(client)).json()["status"] == "running"
    seen = {}
    for i in range(60):
        r = client.get("/experiments/lexical/search", params={"q": "pen", "user_id": f"u{i}", "k": 5}).json()
        seen[f"u{i}"] = r["variant"]
        if r["hits"] and i % 3 == 0:
            client.post("/exposures", headers=_h(client), json=[{
                "kind": "click", "list_id": r["list_id"], "user_id": f"u{i}", "surface": "search",
                "item_id": r["hits"][0]["id"], "position": 1, "experiment": "lexical"}])
    assert set(seen.values()) <= {"A", "B", "holdout"} and {"A", "B"} <= set(seen.values())
    again = client.get("/experiments/lexical/search", params={"q": "ink", "user_id": "u7"}).json()
    assert again["variant"] == seen["u7"]  # sticky
    st = client.get("/experiments/lexical", headers=_h(client)).json()
    assert st["impressions"] == 61 and "salt" not in st and st["srm"]["mismatch"] is False
    rep = client.get("/experiments/lexical/report", headers=_h(client)).json()
    assert set(rep["arms"]) == {"A", "B", "holdout"} and rep["arms"]["A"]["clicks"] + rep["arms"]["B"]["clicks"] > 0
    assert client.post("/experiments/lexical/stop", headers=_h(client)).json()["status"] == "stopped"
    tdi = {"name": "tdi", "kind": "interleave", "variants": [{"name": "hybrid"}, {"name": "bm25",
                                                                                  "search": {"mode": "bm25"}}]}
    client.post("/experiments", json=tdi, headers=_h(client))
    r = client.get("/experiments/tdi/search", params={"q": "stapler", "user_id": "u1", "k": 6}).json()
    assert r["variant"].startswith("tdi:") and len(r["variant"]) == 4 + len(r["hits"])
    client.post("/exposures", headers=_h(client), json=[{
        "kind": "click", "list_id": r["list_id"], "user_id": "u1", "surface": "search",
        "item_id": r["hits"][0]["id"], "position": 1, "experiment": "tdi"}])
    rep = client.get("/experiments/tdi/report", headers=_h(client)).json()
    assert rep["kind"] == "interleave" and rep["impressions"] == 1 and rep["wins_a"] + rep["wins_b"] == 1


def test_user_export_and_retention(client) -> None:  # type: ignore[no-untyped-def]
    client.get("/experiments")  # the app is up
    client.post("/exposures", headers=_h(client), json=[{
        "kind": "impression", "list_id": "L1", "user_id": "s3", "surface": "recommend", "items": ["office-1"]}])
    out = client.get("/privacy/users/s3/export", headers=_h(client)).json()
    assert len(out["events"]) == 1 and len(out["exposures"]) == 1
    r = client.post("/privacy/retention", params={"days": 2.5}, headers=_h(client)).json()
    assert r["removed"]["events"] == 24 and r["removed"]["exposures"] == 0  # purchases 3, 4 and 5 days old
    assert client.get("/privacy/users/s3/export", headers=_h(client)).json()["events"] == []


def test_the_server_applies_retention_on_a_schedule(built, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app

    home = tmp_path / "home"
    shutil.copytree(built, home)
    app = create_app(Settings.load(home, event_retention_days=2.5), warm=False)
    with TestClient(app) as c:
        store = app.state.shopsense.engine.store
        deadline = time.time() + 30
        while store.count_events() != 16 and time.time() < deadline:  # the sweep runs at start
            time.sleep(0.2)
        assert store.count_events() == 16  # purchases 1 and 2 days old stay
        assert c.get("/health").status_code == 200
