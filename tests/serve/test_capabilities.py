"""Search, recommendations, similar, complements, cart completion and bundles over HTTP.

Two layers: the adapter (query parameters -> engine call, ResultList -> JSON) is
checked against a recording engine through a dependency override, and every
endpoint is then checked end to end on the real Office slice once the capability
is in the tree.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shopsense.rerank import finish
from shopsense.results import Hit, ResultList
from shopsense.serve import get_engine

from .conftest import needs


class Recording:
    """Wraps the real engine; records capability calls and answers with real products."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _answer(self, name: str, *args: Any, **kw: Any) -> ResultList:
        """Finished hits, as every engine method returns them (products and reasons filled
        by the one finishing stage); the HTTP layer only serialises them."""
        self.calls.append((name, args, kw))
        ids = self._engine.catalog().ids[:3]
        res = ResultList([Hit(i, 1.0 / (r + 1), "popular", evidence={"category": None})
                          for r, i in enumerate(ids)], {"facets": {"brand": {"X": 3}}})
        return finish(res, self._engine.catalog(), k=len(ids), context={"surface": name})

    def search(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("search", *a, **kw)

    def recommend(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("recommend", *a, **kw)

    def similar(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("similar", *a, **kw)

    def complements(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("complements", *a, **kw)

    def complete_cart(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("complete_cart", *a, **kw)

    def bundle(self, *a: Any, **kw: Any) -> ResultList:
        return self._answer("bundle", *a, **kw)


@pytest.fixture()
def recording(client):  # type: ignore[no-untyped-def]
    rec = Recording(client.app.state.shopsense.engine)
    client.app.dependency_overrides[get_engine] = lambda: rec
    yield rec
    client.app.dependency_overrides.clear()


def test_adapter_passes_parameters_and_serialises_products_and_reasons(client, recording):
    pid = recording.catalog().ids[5]
    r = client.get("/search", params={"q": "stapler", "k": 7, "user_id": "u9", "brand": "Swingline",
                                      "price_max": 30, "in_stock": "true", "attr": ["color:red"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["facets"] == {"brand": {"X": 3}}
    assert all(h["product"]["title"] and h["reason"] for h in body["hits"])
    name, args, kw = recording.calls[-1]
    assert name == "search" and args == ("stapler",) and kw["k"] == 7 and kw["user_id"] == "u9"
    assert kw["filters"] == {"brand": "Swingline", "price_max": 30.0, "in_stock": True,
                             "attributes": {"color": "red"}}
    # a second identical search is served from the cache, and the metrics say so
    client.get("/search", params={"q": "stapler", "k": 7, "user_id": "u9", "brand": "Swingline",
                                  "price_max": 30, "in_stock": "true", "attr": ["color:red"]})
    assert len([c for c in recording.calls if c[0] == "search"]) == 1
    metrics = client.get("/metrics").text
    assert 'shopsense_cache_total{result="hit"} 1.0' in metrics
    # the one computed search: the first answer of a kind takes a thread (its cost unknown)
    assert 'shopsense_answers_computed_total{kind="search",where="thread"} 1.0' in metrics

    client.get("/users/u9/recommendations", params={"k": 4, "category": "Pens"})
    assert recording.calls[-1][0] == "recommend" and recording.calls[-1][1] == ("u9",)
    assert recording.calls[-1][2] == {"k": 4, "filters": {"category": "Pens"}}
    client.get(f"/items/{pid}/similar", params={"k": 3})
    assert recording.calls[-1] == ("similar", (pid,), {"k": 3, "filters": None})
    client.get(f"/items/{pid}/complements")
    assert recording.calls[-1] == ("complements", (pid,), {"k": 10})
    client.post("/carts/complete", json={"items": [pid], "k": 2})
    assert recording.calls[-1] == ("complete_cart", ([pid],), {"k": 2})
    client.post("/bundles", json={"items": [pid], "size": 3, "budget": 50})
    assert recording.calls[-1] == ("bundle", ([pid],), {"size": 3, "budget": 50.0})
    # unknown item ids are a 404 naming the field, whatever the capability would do
    r = client.get("/items/NOPE/similar")
    assert r.status_code == 404 and r.json()["field"] == "product_id"


def test_events_invalidate_cached_recommendations(client, recording, write_key):
    client.get("/users/u1/recommendations")
    client.get("/users/u1/recommendations")
    assert len([c for c in recording.calls if c[0] == "recommend"]) == 1
    pid = recording.catalog().ids[0]
    client.post("/events", json=[{"user_id": "u1", "item_id": pid, "type": "click"}],
                headers={"X-API-Key": write_key})
    client.get("/users/u1/recommendations")
    assert len([c for c in recording.calls if c[0] == "recommend"]) == 2


# -- real capabilities on the Office slice -------------------------------------------


def _hits(r: Any) -> list[dict]:
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    for h in hits:
        assert h["product"]["id"] == h["id"] and h["reason"] and h["source"]
    return hits


@needs("search")
def test_search_real(client, office_data):
    products, _ = office_data
    hits = _hits(client.get("/search", params={"q": "printer ink cartridge", "k": 10}))
    assert hits and any("ink" in h["product"]["title"].lower() or "cartridge" in
                        h["product"]["title"].lower() for h in hits)
    typo = _hits(client.get("/search", params={"q": "printr ink cartrige", "k": 10}))
    assert {h["id"] for h in typo} & {h["id"] for h in hits}
    brand = products[0].brand
    if brand:
        hits = _hits(client.get("/search", params={"q": products[0].title, "brand": brand}))
        assert hits and all(h["product"]["brand"] == brand for h in hits)


@needs("recommend")
def test_recommendations_and_similar_real(client, office_data):
    _, events = office_data
    uid = events[0].user_id
    seen = {e.item_id for e in events if e.user_id == uid}
    recs = _hits(client.get(f"/users/{uid}/recommendations", params={"k": 10}))
    assert len(recs) == 10 and not {h["id"] for h in recs} & seen
    item = events[0].item_id
    sim = _hits(client.get(f"/items/{item}/similar", params={"k": 5}))
    assert sim and item not in {h["id"] for h in sim}


@needs("recommend")
def test_recommendations_follow_new_events(client, write_key, office_data):
    products, _ = office_data
    uid = "fresh-shopper"
    before = [h["id"] for h in _hits(client.get(f"/users/{uid}/recommendations"))]
    # a burst of interest in one category must move the list
    cat = products[10].category[-1] if products[10].category else None
    same = [p.id for p in products if cat and p.category and p.category[-1] == cat][:5] or \
        [p.id for p in products[10:15]]
    # recent (the catalogue refuses times after now + 1 day), so they outweigh older interest
    now = time.time() - 3600
    r = client.post("/events", json=[{"user_id": uid, "item_id": i, "type": "add_to_cart",
                                      "timestamp": now + n} for n, i in enumerate(same)],
                    headers={"X-API-Key": write_key})
    assert r.status_code == 200, r.text
    after = [h["id"] for h in _hits(client.get(f"/users/{uid}/recommendations"))]
    assert after != before


@needs("bundles")
def test_complements_cart_and_bundle_real(client, office_data):
    _, events = office_data
    item = events[0].item_id
    comp = client.get(f"/items/{item}/complements", params={"k": 5})
    assert comp.status_code == 200, comp.text
    cart = _hits(client.post("/carts/complete", json={"items": [item], "k": 5}))
    assert item not in {h["id"] for h in cart}
    b = client.post("/bundles", json={"items": [item], "size": 3})
    assert b.status_code == 200, b.text
    ids = [h["id"] for h in b.json()["hits"]]  # the items added to the anchor
    assert 1 <= len(ids) <= 2 and item not in ids and len(ids) == len(set(ids))
    r = client.post("/bundles", json={"items": [item], "size": 1})
    assert r.status_code == 422 and r.json()["field"] == "size"


@needs("search")
@needs("recommend")
def test_delete_user_leaves_no_trace(client, write_key, office_data, home):
    """Issue 7 must-show: no trace in store, indexes, models or recommendations."""
    _, events = office_data
    counts: dict[str, int] = {}
    for e in events:
        counts[e.user_id] = counts.get(e.user_id, 0) + 1
    uid = max(counts, key=counts.get)  # type: ignore[arg-type]
    stranger = "never-seen-user"
    r = client.delete(f"/users/{uid}", headers={"X-API-Key": write_key})
    assert r.status_code == 200 and r.json()["removed"]["events"] == counts[uid]
    eng = client.app.state.shopsense.engine
    assert eng.store.count_events(uid) == 0
    assert uid not in set(eng.store.events().user_id.tolist())
    # recommendations and personalised search now equal a stranger's
    mine = [h["id"] for h in _hits(client.get(f"/users/{uid}/recommendations"))]
    theirs = [h["id"] for h in _hits(client.get(f"/users/{stranger}/recommendations"))]
    assert mine == theirs
    s1 = [h["id"] for h in _hits(client.get("/search", params={"q": "paper", "user_id": uid}))]
    s2 = [h["id"] for h in _hits(client.get("/search", params={"q": "paper", "user_id": stranger}))]
    assert s1 == s2
    # nothing saved under the home (indexes, models, caches) still names the user
    needle = uid.encode()
    leaks = [p for p in home.rglob("*") if p.is_file() and not p.name.startswith("store.sqlite3")
             and needle in p.read_bytes()]
    assert not leaks, f"user id still in {leaks}"


def test_delete_user_leaves_no_bytes_in_store_files(client, write_key, office_data, home):
    _, events = office_data
    counts: dict[str, int] = {}
    for e in events:
        counts[e.user_id] = counts.get(e.user_id, 0) + 1
    uid = max(counts, key=counts.get)  # type: ignore[arg-type]
    assert client.delete(f"/users/{uid}", headers={"X-API-Key": write_key}).status_code == 200
    leaks = [p for p in home.glob("store.sqlite3*") if uid.encode() in p.read_bytes()]
    assert not leaks, f"user id bytes still in {leaks}"


@needs("recommend")
def test_rules_file_edits_reach_cached_lists(client, office_data, home):
    """A rule saved in the home (as `shopsense rules add` does, outside the API) is
    served on the next request, although the previous answer was cached."""
    from shopsense.rerank import Rule, RuleSet, save_rules

    _, events = office_data
    item = events[0].item_id
    first = [h["id"] for h in _hits(client.get(f"/items/{item}/similar", params={"k": 5}))]
    assert first == [h["id"] for h in _hits(client.get(f"/items/{item}/similar", params={"k": 5}))]
    save_rules(home, RuleSet(rules=[Rule(name="hide", action="exclude", match={"ids": [first[0]]})]))
    after = [h["id"] for h in _hits(client.get(f"/items/{item}/similar", params={"k": 5}))]
    assert first[0] not in after and len(after) == 5


def _computed(client: Any, kind: str, where: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'shopsense_answers_computed_total{{kind="{kind}",where="{where}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_one_slow_answer_does_not_send_the_next_ones_to_threads(client, recording):  # type: ignore[no-untyped-def]
    """A cheap kind of answer is computed on the event loop; one slow computation (40 ms of
    CPU: a cold read, a collection) must not tip the estimate, or the next answers of that
    kind take threads that, on a busy worker, wait for the loop to let go of the GIL."""
    answer = recording.recommend("u1")  # one finished list, returned as is: a cheap answer

    def fast(*a: Any, **kw: Any) -> ResultList:
        return answer

    recording.recommend = fast

    def slow_once(*a: Any, **kw: Any) -> ResultList:
        recording.recommend = fast
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.04:
            pass
        return fast(*a, **kw)

    for i in range(3):  # the cost of the kind is learnt
        assert client.get(f"/users/warm{i}/recommendations").status_code == 200
    recording.recommend = slow_once
    assert client.get("/users/slow/recommendations").status_code == 200
    assert recording.recommend is fast
    threads = _computed(client, "recommend", "thread")
    for i in range(8):  # distinct users: cache misses, each computed
        assert client.get(f"/users/after{i}/recommendations").status_code == 200
    assert _computed(client, "recommend", "thread") == threads, client.app.state.shopsense._cost
