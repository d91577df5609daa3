"""Precomputed answers (issue 15, the Gorse pattern): each known user's default recommendations
rendered when the server starts and served in front of FastAPI, only while nothing they were
computed from has changed, and exactly as the route would answer."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient

from shopsense.config import Settings
from shopsense.serve import create_app, precompute_answers, render_answer
from shopsense.serve.main import preload_engine

from .conftest import needs

PATH = "/users/{}/recommendations"


def _users(office_data, n: int = 3) -> list[str]:  # type: ignore[no-untyped-def]
    return [u for u, _ in Counter(e.user_id for e in office_data[1]).most_common(n)]


def _ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [h["id"] for h in response.json()["hits"]]


@needs("recommend")
def test_served_ahead_exactly_as_computed_until_the_user_changes(home, office_data):  # type: ignore[no-untyped-def]
    ann, bob, cy = _users(office_data)
    with TestClient(create_app(Settings.load(home), warm=True)) as c:
        state = c.app.state.shopsense
        assert state.answers is not None and ann in state.answers.rows
        write = state.keys.create("write", name="answers-test")
        first = c.get(PATH.format(ann))
        assert first.status_code == 200 and first.headers["X-Cache"] == "precomputed", first.text
        assert c.get(PATH.format(ann), params={"k": 10}).headers["X-Cache"] == "precomputed"
        # the same hits, reasons and products as the engine's answer rendered now
        computed = state.engine.recommend(ann, k=10)
        import json

        assert first.json()["hits"] == json.loads(render_answer(computed))["hits"]
        # another k, or a filter: the route computes it
        five = c.get(PATH.format(ann), params={"k": 5})
        assert five.headers["X-Cache"] == "miss" and _ids(five) == _ids(first)[:5]
        assert c.get(PATH.format(ann), params={"in_stock": "true"}).headers["X-Cache"] == "miss"
        # ann buys her top item: her next answer is computed from the new history; bob's is untouched
        bought = _ids(first)[0]
        r = c.post("/events", json=[{"user_id": ann, "item_id": bought, "type": "purchase"}],
                   headers={"X-API-Key": write})
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        after = c.get(PATH.format(ann))
        assert after.headers["X-Cache"] == "miss" and bought not in _ids(after)
        assert c.get(PATH.format(bob)).headers["X-Cache"] == "precomputed"
        # a deleted user is dropped from the table, not only left unserved
        assert bob.encode() in state.answers.blob
        assert c.delete(f"/users/{bob}", headers={"X-API-Key": write}).status_code == 200
        assert bob not in state.answers.rows
        assert bob.encode() not in state.answers.blob  # overwritten, not only unserved
        assert c.get(PATH.format(bob)).headers["X-Cache"] == "miss"
        # a catalogue change makes every answer stale
        r = c.post("/products", headers={"X-API-Key": write},
                   json=[{"id": "NEW-1", "title": "Walnut desk organiser", "price": 24.5}])
        assert r.status_code == 200, r.text
        assert c.get(PATH.format(cy)).headers["X-Cache"] == "miss"
        metrics = c.get("/metrics", headers={"X-API-Key": write}).text
        assert 'shopsense_cache_total{result="precomputed"} 3.0' in metrics
        assert 'route="/users/{user_id}/recommendations",status="200"' in metrics


@needs("recommend")
def test_the_route_serves_them_where_the_lane_steps_aside(home, office_data):  # type: ignore[no-untyped-def]
    """A request the lane passes on (here a spelling of k it does not parse; in production a
    worker behind the change feed) still gets the precomputed answer from the route, the
    same bytes, until the user changes."""
    ann, bob, _ = _users(office_data)
    with TestClient(create_app(Settings.load(home), warm=True)) as c:
        write = c.app.state.shopsense.keys.create("write", name="answers-test")
        lane = c.get(PATH.format(ann))
        routed = c.get(PATH.format(ann) + "?k=010")
        assert lane.headers["X-Cache"] == routed.headers["X-Cache"] == "precomputed"
        assert routed.content == lane.content
        r = c.post("/events", json=[{"user_id": ann, "item_id": _ids(lane)[0], "type": "purchase"}],
                   headers={"X-API-Key": write})
        assert r.status_code == 200, r.text
        assert c.get(PATH.format(ann) + "?k=010").headers["X-Cache"] == "miss"
        assert c.get(PATH.format(bob) + "?k=010").headers["X-Cache"] == "precomputed"


@needs("recommend")
def test_the_lane_keeps_the_routes_keys_and_rate_limits(home, office_data):  # type: ignore[no-untyped-def]
    ann = _users(office_data, 1)[0]
    settings = Settings.load(home, rate_limit_per_minute=3)
    with TestClient(create_app(settings, warm=True, require_read_key=True)) as c:
        keys = c.app.state.shopsense.keys
        read = {"X-API-Key": keys.create("read", name="reader")}
        r = c.get(PATH.format(ann))
        assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
        assert c.get(PATH.format(ann), headers={"X-API-Key": "ss_bad_key"}).status_code == 401
        served = [c.get(PATH.format(ann), headers=read) for _ in range(4)]
        assert [s.status_code for s in served] == [200, 200, 200, 429]
        assert served[0].headers["X-Cache"] == "precomputed"


def test_an_answer_is_kept_only_for_the_stamp_it_was_computed_at():
    stamps = {"ann": (7, 7, "v1", 0), "bob": (7, 9, "v1", 0), "cy": (8, 7, "v1", 0)}
    table = precompute_answers(["ann", "bob", "cy"], lambda u: f'{{"u":"{u}"}}'.encode(), stamps.__getitem__)
    assert sorted(table.rows) == ["ann", "bob"]  # the catalogue moved before cy: the rest would be stale
    assert table.get("ann", (7, 7, "v1", 0)) == b'{"u":"ann"}'
    assert table.get("bob", (7, 9, "v1", 0)) == b'{"u":"bob"}'
    assert table.get("bob", (7, 10, "v1", 0)) is None and "bob" not in table.rows  # bob changed: gone
    assert table.get("ann", (7, 7, "v2", 0)) is None  # a new model version


@needs("recommend")
def test_the_supervisor_renders_them_once_for_every_worker(home, office_data):  # type: ignore[no-untyped-def]
    ann = _users(office_data, 1)[0]
    settings = Settings.load(home)
    assert preload_engine(settings)
    with TestClient(create_app(settings, warm=False)) as worker:
        state = worker.app.state.shopsense
        assert state.answers is not None and ann in state.answers.rows  # inherited, not rendered here
        r = worker.get(PATH.format(ann))
        assert r.headers["X-Cache"] == "precomputed"
        assert _ids(r) == [h.id for h in state.engine.recommend(ann, k=10).hits]
    with TestClient(create_app(Settings.load(home, precomputed_answers=0), warm=True)) as off:
        assert off.app.state.shopsense.answers is None
        assert off.get(PATH.format(ann)).headers["X-Cache"] == "miss"


@needs("recommend")
def test_a_new_model_retires_them_and_they_are_rendered_again(home, office_data):  # type: ignore[no-untyped-def]
    """``shopsense train`` in another process: until the worker swaps the new version in, the
    answers (precomputed or computed) are the old model's and say so; after it, none is, and
    the precomputed ones come back rendered by the new model."""
    import time

    from shopsense.engine import Engine

    ann = _users(office_data, 1)[0]
    with TestClient(create_app(Settings.load(home), warm=True)) as c:
        engine = c.app.state.shopsense.engine
        old = c.get(PATH.format(ann)).json()["model_version"]
        with Engine(home) as builder:
            new = builder.train(sasrec=False, ranker=False)["version"]
        assert new != old
        # what the engine serves, not what is on disk, names the build (else an answer of the old
        # model could be filed under the new version, and outlive the swap)
        assert engine.loaded_builds()[1] in (old, new)
        deadline, seen = time.time() + 120, []
        while time.time() < deadline:
            r = c.get(PATH.format(ann))
            seen.append((r.json()["model_version"], r.headers["X-Cache"]))
            if seen[-1] == (new, "precomputed"):
                break
            time.sleep(0.2)
        assert seen[-1] == (new, "precomputed"), seen[-5:]
        # once the new version answered, the old one never does again
        first_new = next(i for i, (v, _) in enumerate(seen) if v == new)
        assert all(v == new for v, _ in seen[first_new:])
        assert engine.loaded_builds()[1] == new


if __name__ == "__main__":
    pytest.main([__file__])
