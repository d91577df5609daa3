"""Writes, deletion, health, metrics, errors and limits over a real Office slice."""

from __future__ import annotations

import json
import logging

import pytest


def _events(user: str, items: list[str], t0: float = 1.7e9) -> list[dict]:
    return [{"user_id": user, "item_id": it, "type": "click", "timestamp": t0 + i}
            for i, it in enumerate(items)]


def test_health_counts_the_store(client, office_data):
    products, events = office_data
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["products"] == len(products) and body["events"] == len(events)


def test_post_events_stores_every_event_and_reports_duplicates(client, write_key, office_data):
    products, _ = office_data
    before = client.get("/health").json()["events"]
    batch = _events("new-shopper", [p.id for p in products[:25]])
    r = client.post("/events", json=batch, headers={"X-API-Key": write_key})
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 25, "stored": 25, "duplicates": 0}
    again = client.post("/events", json=batch, headers={"X-API-Key": write_key})
    assert again.json() == {"received": 25, "stored": 0, "duplicates": 25}
    assert client.get("/health").json()["events"] == before + 25
    eng = client.app.state.shopsense.engine
    assert eng.store.count_events("new-shopper") == 25


def test_post_events_is_all_or_nothing_and_names_the_field(client, write_key):
    before = client.get("/health").json()["events"]
    bad = _events("u1", ["OFF-1", "OFF-2"]) + [{"user_id": "u1", "type": "click"}]
    r = client.post("/events", json=bad, headers={"X-API-Key": write_key})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "ValidationError" and "2" in body["field"]
    r = client.post("/events", json=[{"user_id": "u1", "item_id": "x", "type": "teleport"}],
                    headers={"X-API-Key": write_key})
    assert r.status_code == 422 and r.json()["field"] == "0.type"
    assert client.get("/health").json()["events"] == before


def test_post_products_upserts_and_validates(client, write_key, office_data):
    products, _ = office_data
    n0 = client.get("/health").json()["products"]
    new = [{"id": "NEW-1", "title": "Walnut desk organiser", "brand": "Acme", "price": 24.5,
            "category": ["Office Products", "Desk Accessories"]},
           {"id": products[0].id, "title": products[0].title + " (renamed)"}]
    r = client.post("/products", json=new, headers={"X-API-Key": write_key})
    assert r.status_code == 200, r.text
    assert r.json() == {"upserted": 2, "products": n0 + 1}
    item = client.get("/items/NEW-1").json()
    assert item["title"] == "Walnut desk organiser" and item["price"] == 24.5
    assert client.get(f"/items/{products[0].id}").json()["title"].endswith("(renamed)")
    r = client.post("/products", json=[{"id": "BAD", "title": "x", "price": -3}],
                    headers={"X-API-Key": write_key})
    assert r.status_code == 422 and r.json()["field"] == "0.price"
    assert client.get("/items/NO-SUCH-ITEM").status_code == 404
    for what in ("similar", "complements", "substitutes"):  # twice: a 404 is never cached
        for _ in range(2):
            r = client.get(f"/items/NO-SUCH-ITEM/{what}")
            assert r.status_code == 404 and r.json()["error"] == "NotFoundError", (what, r.text)
    r = client.get("/items/NEW-1/similar?k=3")
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss" and len(r.json()["hits"]) <= 3
    assert client.get("/items/NEW-1/similar?k=3").headers["X-Cache"] == "hit"


def test_delete_user_removes_events_and_reports(client, write_key, office_data):
    _, events = office_data
    uid = events[0].user_id
    n = sum(e.user_id == uid for e in events)
    r = client.delete(f"/users/{uid}", headers={"X-API-Key": write_key})
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == uid and r.json()["removed"]["events"] == n
    eng = client.app.state.shopsense.engine
    assert eng.store.count_events(uid) == 0
    assert uid not in set(eng.store.events().user_id.tolist())
    again = client.delete(f"/users/{uid}", headers={"X-API-Key": write_key})
    assert again.status_code == 200 and again.json()["removed"]["events"] == 0


@pytest.mark.parametrize("method,path,body", [
    ("post", "/events", [{"user_id": "u", "item_id": "i", "type": "click"}]),
    ("post", "/products", [{"id": "p", "title": "t"}]),
    ("delete", "/users/someone", None),
])
def test_writes_need_a_write_key(client, read_key, method, path, body):
    kw = {"json": body} if body is not None else {}
    assert getattr(client, method)(path, **kw).status_code == 401
    r = getattr(client, method)(path, headers={"X-API-Key": read_key}, **kw)
    assert r.status_code == 403 and r.json()["field"] == "X-API-Key"
    r = getattr(client, method)(path, headers={"X-API-Key": "ss_deadbeef_nope"}, **kw)
    assert r.status_code == 401
    r = getattr(client, method)(path, headers={"X-API-Key": "garbage"}, **kw)
    assert r.status_code == 401


def test_keys_are_stored_hashed(client, write_key, home):
    raw = (home / "api_keys.json").read_text()
    secret = write_key.split("_", 2)[2]
    assert secret not in raw and write_key not in raw
    assert json.loads(raw)["keys"][0]["hash"]
    assert (home / "api_keys.json").stat().st_mode & 0o077 == 0


def test_keys_changed_by_another_process_without_a_stat_per_request(tmp_path, monkeypatch):
    """verify() looks at the keys file at most every recheck_s (its stat per request cost
    the event loop the GIL), yet a key another process just created works at once, and one
    it revoked stops working within recheck_s."""
    import pathlib
    import time

    from shopsense.errors import AuthError
    from shopsense.serve import KeyStore

    path = tmp_path / "api_keys.json"
    server, cli = KeyStore(path, recheck_s=60.0), KeyStore(path)
    old = cli.create("write", name="old")
    assert server.verify(old).name == "old"
    stats = []
    real_stat = pathlib.Path.stat
    monkeypatch.setattr(pathlib.Path, "stat", lambda self, *a, **k: stats.append(1) or real_stat(self, *a, **k))
    for _ in range(50):
        server.verify(old)
    assert stats == []  # 50 requests, no look at the file
    monkeypatch.undo()
    new = cli.create("read", name="new")  # an unknown id: the file is read at once
    assert server.verify(new).role == "read"
    assert cli.revoke(old.split("_")[1])
    assert server.verify(old).name == "old"  # within recheck_s: still the keys it read
    server.recheck_s = 0.05
    time.sleep(0.1)
    with pytest.raises(AuthError):
        server.verify(old)


def test_private_reads_need_a_key(home, make_client):
    with make_client(home, warm=False, require_read_key=True) as c:
        key = c.app.state.shopsense.keys.create("read")
        assert c.get("/stats").status_code == 401
        assert c.get("/stats", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/health").status_code == 200  # probes never need a key


def test_rate_limit_per_key(home, make_client):
    with make_client(home, warm=False, settings={"rate_limit_per_minute": 5}) as c:
        k1 = c.app.state.shopsense.keys.create("read")
        k2 = c.app.state.shopsense.keys.create("read")
        codes = [c.get("/stats", headers={"X-API-Key": k1}).status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
        r = c.get("/stats", headers={"X-API-Key": k1})
        assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"] == "RateLimited"
        # another key has its own bucket
        assert c.get("/stats", headers={"X-API-Key": k2}).status_code == 200
        metrics = c.get("/metrics", headers={"X-API-Key": k2}).text
        assert "shopsense_rate_limited_total 3.0" in metrics


def test_request_size_limit(home, make_client):
    with make_client(home, warm=False, settings={"max_request_bytes": 2048}) as c:
        key = c.app.state.shopsense.keys.create("write")
        big = _events("u", [f"OFF-{i}" for i in range(200)])
        r = c.post("/events", json=big, headers={"X-API-Key": key})
        assert r.status_code == 413 and r.json()["field"] == "body"
        # a chunked body without Content-Length is counted while streaming
        payload = json.dumps(big).encode()
        r = c.post("/events", content=iter([payload[:1500], payload[1500:]]),
                   headers={"X-API-Key": key, "Content-Type": "application/json"})
        assert r.status_code == 413


def test_metrics_prometheus_text(client):
    client.get("/health")
    client.get("/items/NO-SUCH")
    text = client.get("/metrics").text
    assert 'shopsense_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'route="/items/{item_id}",status="404"' in text
    assert "shopsense_request_latency_seconds_bucket" in text
    assert "shopsense_cache_total" in text or "# TYPE shopsense_cache_total counter" in text


def test_cors_is_configurable(home, make_client):
    with make_client(home, warm=False, settings={"cors_origins": ["https://shop.example"]}) as c:
        r = c.options("/search", headers={"Origin": "https://shop.example",
                                          "Access-Control-Request-Method": "GET"})
        assert r.headers["access-control-allow-origin"] == "https://shop.example"
        r = c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with make_client(home, warm=False) as c:  # off by default
        r = c.get("/health", headers={"Origin": "https://shop.example"})
        assert "access-control-allow-origin" not in r.headers


def test_logs_pseudonymise_user_ids(client, write_key, caplog):
    uid = "alice@example.com"
    with caplog.at_level(logging.INFO, logger="shopsense"):
        client.delete(f"/users/{uid}", headers={"X-API-Key": write_key})
        client.get("/search", params={"q": "pen", "user_id": uid})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/users/{user_id}" in text
    assert uid not in text and "u_" in text
    pseudo = client.app.state.shopsense.pseudo
    assert pseudo(uid) == pseudo(uid) != pseudo("bob")


def test_bad_input_is_4xx_naming_the_field(client):
    r = client.get("/search", params={"q": "pen", "k": 0})
    assert r.status_code == 422 and r.json()["field"] == "k"
    r = client.get("/search", params={"q": "pen", "attr": "nocolon"})
    assert r.status_code == 422 and r.json()["field"] == "attr"
    r = client.get("/search")
    assert r.status_code == 422 and r.json()["field"] == "q"
    r = client.post("/carts/complete", json={"items": []})
    assert r.status_code == 422 and r.json()["field"] == "items"
    r = client.post("/bundles", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_dashboard_feeds(client, tmp_path):
    stats = client.get("/stats").json()
    assert stats["products"] > 0 and stats["events"] > 0 and "latency" in stats
    assert client.get("/bench/results").status_code == 200
    assert "<title>" in client.get("/").text and "<title>" in client.get("/dashboard").text
    assert client.get("/storefront/config").json()["demo_key"] is None


def test_demo_key_only_in_demo_mode(home, make_client):
    with make_client(home, warm=False, demo=True) as c:
        cfg = c.get("/storefront/config").json()
        assert cfg["demo_key"].startswith("ss_") and cfg["demo_users"]
        r = c.post("/events", json=_events(cfg["demo_users"][0], ["OFF-1"]),
                   headers={"X-API-Key": cfg["demo_key"]})
        assert r.status_code == 200
    with make_client(home, warm=False, demo=True) as c:  # a restart replaces the old demo key
        assert c.get("/storefront/config").json()["demo_key"] != cfg["demo_key"]
        r = c.post("/events", json=_events("x", ["OFF-1"]), headers={"X-API-Key": cfg["demo_key"]})
        assert r.status_code == 401


def test_a_started_worker_collects_cyclic_garbage_less_often(home):  # type: ignore[no-untyped-def]
    """Each request allocates thousands of objects: at CPython's default thresholds a worker
    spent ~15% of its CPU in the cyclic collector (serve.main.GC_THRESHOLDS)."""
    import gc

    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app
    from shopsense.serve.main import GC_THRESHOLDS

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with TestClient(create_app(Settings.load(home), warm=False)):
            assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
