"""Where a worker computes an answer (issue 15): as many at once as it has cores, and on a
one-core worker, on the event loop in the order requests came."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import needs


def test_a_worker_computes_as_many_answers_at_once_as_it_has_cores(monkeypatch, client):  # type: ignore[no-untyped-def]
    """``serve --workers N`` gives each worker cores // N (OMP_NUM_THREADS)."""
    from shopsense.serve import compute_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert compute_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert compute_threads() == 4  # one search's ONNX run beside another's Python work
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert compute_threads() == 4  # the cap: more threads only take turns at the GIL
    r = client.get("/search", params={"q": "stapler"})  # the server's first computed answer
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss", r.text
    assert client.app.state.shopsense._compute.total_tokens == 4


def test_queued_computations_run_in_arrival_order_and_an_abandoned_one_never_runs(client):  # type: ignore[no-untyped-def]
    state = client.app.state.shopsense
    ran: list[int] = []

    def job(i: int):  # type: ignore[no-untyped-def]
        def run() -> int:
            ran.append(i)
            return i * 10
        return run

    def bad_row() -> int:
        raise ValueError("row 3: no price")

    async def main() -> None:
        first = [asyncio.ensure_future(state.queued(job(i))) for i in range(3)]
        failing = asyncio.ensure_future(state.queued(bad_row))
        abandoned = asyncio.ensure_future(state.queued(job(99)))
        last = asyncio.ensure_future(state.queued(job(3)))
        await asyncio.sleep(0)  # every request has queued its computation; one has run at most
        abandoned.cancel()  # its client went away
        assert await asyncio.gather(*first, last) == [0, 10, 20, 30]
        with pytest.raises(ValueError, match="row 3"):  # raised in its own request only
            await failing
        assert abandoned.cancelled()
        state.stop_queue()

    asyncio.run(main())
    assert ran == [0, 1, 2, 3]


@needs("search")
def test_a_one_core_worker_computes_searches_on_its_loop_with_the_same_answers(monkeypatch, make_client, home):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # searches on this small shop cost less than the "cheap answer" bar: raise them above it
    monkeypatch.setattr("shopsense.serve._state.INLINE_BELOW_S", 0.0)
    monkeypatch.setattr("shopsense.serve._state.THREAD_ABOVE_S", 0.0)
    monkeypatch.setattr("shopsense.serve._state.QUEUE_ABOVE_S", 0.0)
    with make_client(home, warm=True) as client:  # warm: the first search loads nothing
        engine = client.app.state.shopsense.engine
        for q in ("stapler", "black pens", "desk organizer"):
            r = client.get("/search", params={"q": q, "k": 5})
            assert r.status_code == 200 and r.headers["X-Cache"] == "miss", r.text
            assert [h["id"] for h in r.json()["hits"]] == [h.id for h in engine.search(q, k=5).hits]
        metrics = client.get("/metrics").text
    # the first search of the server took a thread (its cost unknown), the next two the queue
    assert 'shopsense_answers_computed_total{kind="search",where="thread"} 1.0' in metrics
    assert 'shopsense_answers_computed_total{kind="search",where="queue"} 2.0' in metrics


@needs("search")
def test_answers_cheaper_than_a_search_keep_the_thread_on_a_one_core_worker(monkeypatch, make_client, home):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr("shopsense.serve._state.INLINE_BELOW_S", 0.0)
    monkeypatch.setattr("shopsense.serve._state.THREAD_ABOVE_S", 0.0)
    monkeypatch.setattr("shopsense.serve._state.QUEUE_ABOVE_S", 10.0)  # every search is "cheaper"
    with make_client(home, warm=True) as client:
        for q in ("stapler", "black pens"):
            assert client.get("/search", params={"q": q}).status_code == 200
        metrics = client.get("/metrics").text
    assert 'shopsense_answers_computed_total{kind="search",where="thread"} 2.0' in metrics
    assert 'where="queue"' not in metrics
