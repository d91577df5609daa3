"""Writes off the read path (issue "Serve a shop's real traffic").

Event posts are committed in groups by one writer thread per worker and acknowledged
only once committed; one request's bad batch fails that request only; a shutdown
commits what is queued; a write makes only the acting user's cached answers stale;
the rate limit leases tokens without ever allowing more than the bucket.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shopsense.catalog import Event
from shopsense.serve import EventWriter, RateLimiter, SQLiteSharedState, WriterClosed
from shopsense.store import SQLiteStore

from .conftest import needs


def _events(user: str, n: int, tag: str = "") -> list[Event]:
    return [Event(user_id=user, item_id=f"item-{i}", type="view", session_id=f"s{tag}-{i}") for i in range(n)]


@pytest.fixture()
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = SQLiteStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


def test_queued_requests_share_one_commit_and_each_gets_its_own_count(store):
    seen: list[list[Event]] = []
    writer = EventWriter(store, seen.append)
    batches = [_events(f"u{i}", 3) for i in range(20)]
    futures = [writer.submit(b) for b in batches]
    futures.append(writer.submit(batches[0]))  # the same events again: duplicates
    writer.start()
    assert [f.result(timeout=60) for f in futures] == [3] * 20 + [0]
    writer.close()
    assert writer.commits == 1 and writer.requests == 21  # one transaction for 21 requests
    assert store.count_events() == 60
    assert len(seen) == 1 and len(seen[0]) == 63  # the engine, cache and feed hear once


def test_a_group_takes_what_arrived_while_another_worker_committed(store, tmp_path):
    """Two workers' stores on one file (two descriptors: their flocks exclude each other as two
    processes' do). While the other holds the write lock, this worker's writer has taken its
    first request and waits; everything posted meanwhile joins that commit. Failed before:
    the group was closed before the wait, so the first request was committed alone."""
    other = SQLiteStore(tmp_path / "store.sqlite3")
    writer = EventWriter(store, lambda _: None).start()
    try:
        with other.writing():
            first = writer.submit(_events("first", 2))
            deadline = time.monotonic() + 30
            while writer._q.qsize() and time.monotonic() < deadline:  # the writer took it, and waits
                time.sleep(0.01)
            time.sleep(0.2)
            rest = [writer.submit(_events(f"later{i}", 2)) for i in range(5)]
            assert not first.done()  # not acknowledged while the other worker holds the lock
        assert [f.result(timeout=60) for f in [first, *rest]] == [2] * 6
        assert writer.commits == 1 and writer.requests == 6
    finally:
        writer.close()
        other.close()
    assert store.count_events() == 12


def test_a_refused_batch_fails_its_request_only(store):
    # a row the store cannot take (what validation lets through never fails; this is a guard)
    bad = [Event.model_construct(**{**_events("b", 1, "bad")[0].__dict__, "user_id": None})]
    writer = EventWriter(store, lambda _: None)
    good1, refused, good2 = (writer.submit(_events("a", 2)), writer.submit(_events("b", 1) + bad),
                             writer.submit(_events("c", 2)))
    writer.start()
    assert good1.result(timeout=60) == 2 and good2.result(timeout=60) == 2
    with pytest.raises((TypeError, sqlite3.IntegrityError)):
        refused.result(timeout=60)
    writer.close()
    assert store.count_events() == 4 and store.count_events("b") == 0  # all or nothing per request


def test_close_commits_what_was_queued_and_refuses_what_comes_after(store):
    writer = EventWriter(store, lambda _: None)
    queued = [writer.submit(_events(f"u{i}", 2)) for i in range(5)]
    writer.start()
    writer.close()
    assert all(f.done() and f.result() == 2 for f in queued)
    assert store.count_events() == 10
    with pytest.raises(WriterClosed):
        writer.submit(_events("late", 1))


def test_many_threads_posting_at_once_lose_nothing(store):
    writer = EventWriter(store, lambda _: None).start()
    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(lambda i: writer.submit(_events(f"t{i}", 5)).result(timeout=120), range(200)))
    writer.close()
    assert counts == [5] * 200 and store.count_events() == 1000
    assert writer.commits < 200  # grouped under contention


def test_reads_do_not_wait_for_a_write_in_progress(store):
    """A transaction held open by the writer (here: the write lock taken by hand) does not
    block a read: reads have their own connections."""
    store.add_events(_events("r", 3))
    with store._lock:  # what a long commit holds
        store._conn.execute("BEGIN IMMEDIATE")
        try:
            done = threading.Event()
            t = threading.Thread(target=lambda: (store.count_events("r"), done.set()))
            t.start()
            assert done.wait(30), "the read waited for the writer"
        finally:
            store._conn.execute("ROLLBACK")
    t.join()


# -- the cache: a write makes only its user's answers stale ------------------------------------

@needs("recommend")
def test_an_event_recomputes_its_users_list_only(client, write_key, office_data):
    _, events = office_data
    a, b = sorted({e.user_id for e in events})[:2]
    engine = client.app.state.shopsense.engine
    calls: list[str] = []
    real = engine.recommend

    def counting(user_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(user_id)
        return real(user_id, *args, **kwargs)

    engine.recommend = counting
    for u in (a, b, a, b):
        assert client.get(f"/users/{u}/recommendations").status_code == 200
    assert calls == [a, b]  # the second round was cached
    r = client.post("/events", json=[{"user_id": a, "item_id": events[0].item_id, "type": "click"}],
                    headers={"X-API-Key": write_key})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    for u in (a, b):
        assert client.get(f"/users/{u}/recommendations").status_code == 200
    assert calls == [a, b, a]  # a's list recomputed, b's still cached


def test_a_product_change_makes_every_answer_stale(client, write_key):
    cache = client.app.state.shopsense.cache
    before = (cache.stamp(), cache.stamp("u1"))
    r = client.post("/products", json=[{"id": "new-1", "title": "A new lamp"}], headers={"X-API-Key": write_key})
    assert r.status_code == 200, r.text
    assert cache.stamp() != before[0] and cache.stamp("u1") != before[1]


# -- rate limits: leases never allow more than the shared bucket ------------------------------

def test_leased_tokens_never_exceed_the_shared_bucket(tmp_path):
    shared = SQLiteSharedState(tmp_path / "state.sqlite3")
    takes = []
    real_take = shared.take

    def counting_take(bucket, per_minute, n):  # type: ignore[no-untyped-def]
        takes.append(n)
        return real_take(bucket, per_minute, n)

    shared.take = counting_take  # type: ignore[method-assign]
    workers = [RateLimiter(6000, shared), RateLimiter(6000, shared)]  # two workers, leases of 10
    assert workers[0].lease == 10
    t0 = time.time()
    assert all(workers[i % 2].hit("ip:x") == 0.0 for i in range(5000))
    assert len(takes) <= 5000 / 10 + 2  # one shared update per lease, not per request
    allowed = 5000 + sum(workers[i % 2].hit("ip:x") == 0.0 for i in range(3000))
    refill = (time.time() - t0) * 6000 / 60
    assert 6000 - 2 * 10 <= allowed <= 6000 + refill + 1  # never more than the bucket
    shared.close()


def test_low_limits_are_exact(tmp_path):
    shared = SQLiteSharedState(tmp_path / "state.sqlite3")
    a, b = RateLimiter(2, shared), RateLimiter(2, shared)
    assert a.lease == 1
    assert [a.hit("ip:y") == 0.0, b.hit("ip:y") == 0.0, a.hit("ip:y") == 0.0] == [True, True, False]
    shared.close()


# -- readiness and shutdown ---------------------------------------------------------------------

def test_a_worker_shutting_down_refuses_new_events_with_503(home, make_client):
    with make_client(home, warm=False) as c:
        key = c.app.state.shopsense.keys.create("write")
        c.app.state.shopsense.writer.close()
        r = c.post("/events", json=[{"user_id": "u", "item_id": "x", "type": "view"}],
                   headers={"X-API-Key": key})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text


def test_warm_up_never_builds_an_index(tmp_path):
    from shopsense.engine import Engine
    from shopsense.serve import warm_up

    with Engine(tmp_path / "home") as eng:
        eng.add_products([{"id": "p1", "title": "Red lamp"}, {"id": "p2", "title": "Blue chair"}])
        caps = warm_up(eng)
        assert caps["search"].startswith("unavailable") and not (eng.paths.index / "manifest.json").exists()
