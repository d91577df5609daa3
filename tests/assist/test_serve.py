"""``POST /assistant`` (rate-limited), the policy page an answer links to, and sessions
erased by ``DELETE /users/{id}``."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")


@pytest.fixture()
def app_home(shop_home, tmp_path):  # type: ignore[no-untyped-def]
    dst = tmp_path / "home"
    shutil.copytree(shop_home, dst)
    return dst


def _client(home, **settings):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from shopsense.config import Settings
    from shopsense.serve import create_app

    return TestClient(create_app(Settings.load(home, **settings), warm=False))


def test_a_conversation_over_http(app_home):  # type: ignore[no-untyped-def]
    with _client(app_home) as c:
        r = c.post("/assistant", json={"session_id": "web-1", "text": "I need a toner cartridge"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["intent"] == "search" and body["products"] and body["facts"]
        assert body["state"]["query"] == "toner cartridge"
        first = body["products"][0]
        assert {"id", "title", "price"} <= set(first)
        r = c.post("/assistant", json={"session_id": "web-1", "text": "show me the second one"})
        assert r.json()["state"]["focus"] == body["state"]["shown"][1]
        r = c.post("/assistant", json={"session_id": "web-1", "text": "what is your return policy?"})
        link = r.json()["links"][0]["href"]
        page = c.get(link.split("#")[0])
        assert page.status_code == 200 and f"id='{link.split('#')[1]}'" in page.text
        assert c.get("/assistant/policies/..%2Fstore.sqlite3").status_code == 404
        assert c.get("/assistant/policies/nope.md").status_code == 404
        bad = c.post("/assistant", json={"session_id": "", "text": "hi"})
        assert bad.status_code == 422
        bad = c.post("/assistant", json={"session_id": "x", "text": "hi", "extra": 1})
        assert bad.status_code == 422


def test_turns_are_rate_limited(app_home):  # type: ignore[no-untyped-def]
    with _client(app_home, rate_limit_per_minute=3) as c:
        codes = [c.post("/assistant", json={"session_id": "rl", "text": "hello"}).status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = c.post("/assistant", json={"session_id": "rl", "text": "hello"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"] == "RateLimited"


def test_deleting_a_user_erases_their_sessions(app_home):  # type: ignore[no-untyped-def]
    with _client(app_home) as c:
        key = c.app.state.shopsense.keys.create("write", name="t")
        c.post("/assistant", json={"session_id": "u-1", "text": "I need a mouse", "user_id": "dana"})
        c.post("/assistant", json={"session_id": "anon", "text": "I need a mouse"})
        r = c.delete("/users/dana", headers={"X-API-Key": key})
        assert r.status_code == 200 and r.json()["removed"]["assistant_sessions"] == 1
        again = c.post("/assistant", json={"session_id": "u-1", "text": "cheaper"}).json()
        assert again["state"]["turns"] == 1  # a new conversation
        kept = c.post("/assistant", json={"session_id": "anon", "text": "hello"}).json()
        assert kept["state"]["turns"] == 2
