"""The shared serve state: one contract for the SQLite and Redis back-ends, and what
two apps on one home (two workers, in one process here) see of each other's writes."""

from __future__ import annotations

import uuid

import pytest

from shopsense.serve import Change, FeedGap, SharedState, SQLiteSharedState

from ._redis import redis_url  # noqa: F401 - a fixture
from .conftest import needs


@pytest.fixture(params=["sqlite", "redis"])
def shared(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        state: SharedState = SQLiteSharedState(tmp_path / "serve_state.sqlite3")
    else:
        from shopsense.serve import RedisSharedState

        state = RedisSharedState(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex[:8]}")
    yield state
    state.close()


# -- the contract every back-end runs ------------------------------------------------------

def test_bucket_allows_per_minute_then_says_how_long_to_wait(shared):
    assert [shared.hit("ip:a", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = shared.hit("ip:a", 3)
    assert 0 < wait <= 20.0  # one token every 20 s at 3 a minute
    assert shared.hit("ip:b", 3) == 0.0  # buckets are per client


def test_feed_returns_changes_in_order_after_a_position(shared):
    assert shared.head() == 0 and shared.changes_since(0) == []
    pairs = (("u_1", "purchase"), ("u_2", "view"))
    assert shared.publish("events", "w1", pairs) == 1
    assert shared.publish("products", "w2") == 2
    assert shared.publish("forget", "w1", (("u_1", ""),)) == 3
    got = shared.changes_since(0)
    assert got == [Change(1, "events", "w1", pairs), Change(2, "products", "w2"),
                   Change(3, "forget", "w1", (("u_1", ""),))]
    assert shared.changes_since(1, limit=1) == [got[1]]
    assert shared.changes_since(3) == [] and shared.head() == 3


def test_feed_gap_when_the_reader_is_ahead_of_the_head(shared):
    """The shared state was emptied (Redis restarted without persistence): resync in full."""
    shared.publish("products", "w1")
    with pytest.raises(FeedGap):
        shared.changes_since(10)


def test_feed_gap_when_trimmed(tmp_path):
    state = SQLiteSharedState(tmp_path / "s.sqlite3", keep=2)
    for _ in range(5):
        state.publish("products", "w1")
    state.housekeeping()
    assert [c.seq for c in state.changes_since(3)] == [4, 5]
    with pytest.raises(FeedGap) as gap:
        state.changes_since(1)
    assert gap.value.head == 5


def test_bell_spares_the_head_query_until_another_worker_publishes(tmp_path, monkeypatch):
    """Two workers' states on one file: a reader asks SQLite for the head only after the
    bell rang (a publish by anyone), and a publish is never missed."""
    from shopsense.serve import ChangeFeed

    path = tmp_path / "serve_state.sqlite3"
    mine, theirs = SQLiteSharedState(path), SQLiteSharedState(path)
    feed = ChangeFeed(mine, pseudo=lambda u: u)
    heads = []
    real_head = mine.head
    monkeypatch.setattr(mine, "head", lambda: heads.append(1) or real_head())
    assert feed.behind() is False and len(heads) == 1  # first look: the head, once
    assert [feed.behind() for _ in range(50)] == [False] * 50 and len(heads) == 1  # then the bell only
    theirs.publish("products", "w2")
    assert feed.behind() is True and len(heads) == 2  # rung: the head is asked, and there is news
    feed.sync()
    assert feed.behind() is False and feed.behind() is False and len(heads) == 3
    mine.close(), theirs.close()


def test_a_workers_own_change_leaves_it_in_step_and_others_are_still_replayed(shared):
    """Failed before: after each of its own commits a worker was 'behind' its own change,
    so every following request took a thread and the feed's lock to read it back."""
    from types import SimpleNamespace

    from shopsense.serve import ChangeFeed

    mine = ChangeFeed(shared, pseudo=lambda u: f"p-{u}")
    replayed: list[str] = []
    mine.engine = SimpleNamespace(notify_events=lambda evs: replayed.extend(e.user_id for e in evs),
                                  notify_products_changed=lambda: replayed.append("products"))
    ev = SimpleNamespace(user_id="ann", type="view")
    seq = mine.events_stored([ev])
    assert mine.position == seq and mine.products_changed() == mine.position == seq + 1
    if shared.local_reads:
        assert mine.behind() is False  # nothing to read back (Redis always reads)
    assert mine.sync() == seq + 1 and replayed == []  # its own changes are never replayed
    # another worker's change first: this worker's next one must not jump over it
    shared.publish("events", "another-worker", (("p-bob", "view"),))
    later = mine.events_stored([ev])
    assert mine.position == seq + 1 and mine.behind() is True
    assert mine.sync() == later and replayed == ["p-bob"]  # replayed, under its pseudonym


def test_query_vectors_are_shared_by_hash_and_a_failure_is_a_miss(shared):
    import numpy as np

    from shopsense.serve import SharedQueryVectors
    from shopsense.text import TextEncoder

    class Counting(TextEncoder):  # the real cache path; the model call itself is counted
        calls = 0

        def _encode(self, texts, progress):  # type: ignore[no-untyped-def]
            Counting.calls += len(texts)
            return np.stack([np.full(4, len(t), np.float32) for t in texts])

    a, b = Counting("m"), Counting("m")  # two workers
    a.shared_queries = b.shared_queries = SharedQueryVectors(shared)
    va = a.encode_queries(["cordless drill", "red kettle"])
    vb = b.encode_queries(["red kettle", "cordless drill"])
    assert Counting.calls == 2 and np.array_equal(va, vb[::-1])  # the second worker encoded nothing
    other = Counting("another-model")
    other.shared_queries = SharedQueryVectors(shared)
    other.encode_queries(["red kettle"])
    assert Counting.calls == 3  # another encoder never reads the first one's vectors
    keys: list[str] = []
    spy = SharedQueryVectors(shared)
    spy.put = lambda k, v: keys.append(k)  # type: ignore[method-assign]
    other.shared_queries = spy
    other.encode_queries(["blue kettle"])
    assert len(keys) == 1 and len(keys[0]) == 64 and "kettle" not in keys[0]  # a hash, never the query

    class Down(type(shared)):  # type: ignore[misc]
        def vector_get(self, key):  # type: ignore[no-untyped-def]
            raise shared.errors[0]("unreachable")

    broken = Counting("m")
    broken.shared_queries = SharedQueryVectors(shared)
    broken.shared_queries.shared = Down.__new__(Down)
    broken.shared_queries.shared.errors = shared.errors
    broken.shared_queries.shared.vector_put = lambda k, v: None
    assert broken.encode_queries(["red kettle"]).shape == (1, 4) and Counting.calls == 5


def test_response_cache_entries_live_in_redis_only(shared):
    shared.cache_put("k", {"hits": [1]}, ttl_s=60)
    assert shared.cache_get("k") == ({"hits": [1]} if shared.shares_cache else None)


# -- two workers on one home ---------------------------------------------------------------

def test_feed_never_holds_a_user_id(home, make_client):
    with make_client(home, warm=False) as c:
        key = c.app.state.shopsense.keys.create("write")
        r = c.post("/events", json=[{"user_id": "secret-shopper-42", "item_id": "x", "type": "view"}],
                   headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
    for path in home.glob("serve_state.sqlite3*"):
        assert b"secret-shopper-42" not in path.read_bytes()


def test_livez_and_readyz(home, make_client):
    with make_client(home, warm=False) as c:
        assert c.get("/livez").json()["status"] == "alive"
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["shared_state"] == "sqlite"
        state = c.app.state.shopsense
        state.ready = False  # what a worker says while it starts or drains
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["problems"] == ["starting or shutting down"]
        state.ready, state.capabilities = True, {"recommend": "failed: OSError: unreadable"}
        assert c.get("/readyz").status_code == 503


@needs("recommend")
def test_deleting_a_user_on_one_worker_reaches_the_other(home, make_client, office_data):
    from collections import Counter

    from shopsense.engine import Engine

    user = Counter(e.user_id for e in office_data[1]).most_common(1)[0][0]
    with make_client(home, warm=False) as a, make_client(home, warm=False) as b:
        key = a.app.state.shopsense.keys.create("write")
        before = b.get(f"/users/{user}/recommendations").json()
        assert before["hits"]
        assert a.delete(f"/users/{user}", headers={"X-API-Key": key}).status_code == 200
        after = b.get(f"/users/{user}/recommendations").json()
    with Engine(home) as fresh:
        expected = [h.id for h in fresh.recommend(user, k=10).hits]
    assert [h["id"] for h in after["hits"]] == expected != [h["id"] for h in before["hits"]]


def test_response_cache_can_be_turned_off(home, make_client):
    """Settings.response_cache_ttl_s = 0: every answer is computed (bench/serve.py measures
    served throughput this way against the in-process limit, which has no cache)."""
    for ttl, second in ((60.0, "hit"), (0.0, "miss")):
        with make_client(home, warm=False, settings={"response_cache_ttl_s": ttl}) as c:
            first = c.get("/search", params={"q": "stapler", "k": 5})
            again = c.get("/search", params={"q": "stapler", "k": 5})
            assert first.status_code == again.status_code == 200, first.text
            assert first.headers["X-Cache"] == "miss" and again.headers["X-Cache"] == second
            assert again.json()["hits"] == first.json()["hits"]


def test_query_vector_cache_can_be_turned_off(home, make_client):
    """Settings.query_vector_cache = 0: every query is encoded, no vector kept in the
    worker nor shared with the others (bench/serve.py's --no-cache, like its limit)."""
    for size in (1024, 0):
        with make_client(home, warm=False, settings={"query_vector_cache": size}) as c:
            assert c.get("/search", params={"q": "stapler", "k": 5}).status_code == 200
            enc = c.app.state.shopsense.engine.encoder
            assert enc.query_cache_size == size
            assert len(enc._qcache) == (1 if size else 0)
            assert (enc.shared_queries is None) == (size == 0)


def test_a_user_pushed_out_of_the_feed_is_dropped_from_the_engine_too(shared):
    """The feed maps pseudonyms back only for the users it holds; a worker serving more
    users than that must not keep a cached history it could no longer hear changed."""
    from types import SimpleNamespace

    from shopsense.serve import ChangeFeed

    feed = ChangeFeed(shared, pseudo=lambda u: f"p-{u}", max_users=2)
    dropped: list[str] = []
    feed.engine = SimpleNamespace(notify_events=lambda evs: dropped.extend(e.user_id for e in evs))
    for u in ("ann", "bob", "ann", "cy"):  # ann served again: bob is the least recent
        feed.saw(u)
    assert dropped == ["bob"]
    shared.publish("events", "another-worker", (("p-ann", "view"), ("p-bob", "view")))
    feed.sync()
    assert dropped == ["bob", "ann", "p-bob"]  # ann by name; bob only as the pseudonym no cache holds


def test_cached_answers_expire_spread_over_the_second_half_of_their_ttl(monkeypatch):
    """Entries stored together do not all expire together (a wave of recomputation a TTL
    after a fresh worker filled its cache): each lives between half and all of the TTL."""
    import time

    from shopsense.serve import ResponseCache

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = ResponseCache(maxsize=1000, ttl_s=10.0)
    for i in range(400):
        cache.put(("q", i), i)

    def alive() -> int:
        return sum(cache.get(("q", i)) is not None for i in range(400))

    now[0] += 4.99
    assert alive() == 400
    now[0] += 2.5  # 7.49 s: some expired, most not
    assert 100 < alive() < 300
    now[0] += 2.52  # past the TTL
    assert alive() == 0
