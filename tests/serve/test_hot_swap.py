"""Issue 15: a new index or model version written by another process is swapped into a
running engine without a restart and without a failed request."""

from __future__ import annotations

import threading

from shopsense.engine import Engine

from .conftest import needs


@needs("recommend")
@needs("search")
def test_new_model_and_index_versions_swap_in_while_serving(home) -> None:  # type: ignore[no-untyped-def]
    serving = Engine(home)
    user = serving.store.events().user_id[0]
    before = serving.recommend(user, k=5).info["model_version"]
    old_searcher = serving.searcher.searcher
    assert serving.search("stapler", k=5).hits
    assert serving.swap_new_builds(wait=True) == []  # nothing new on disk yet

    with Engine(home) as builder:  # what `shopsense train` / `shopsense index` do in another process
        new_version = builder.train(sasrec=False, ranker=False)["version"]
        builder.build_index()
    assert new_version != before

    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                assert serving.recommend(user, k=5).hits
                assert serving.search("stapler", k=5).hits
            except BaseException as exc:  # noqa: BLE001 - every failure is the test's business
                errors.append(exc)
                return

    t = threading.Thread(target=traffic)
    t.start()
    try:
        assert sorted(serving.swap_new_builds(wait=True)) == ["recommend", "search"]
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert serving.recommend(user, k=5).info["model_version"] == new_version
    assert serving.searcher.searcher is not old_searcher
    assert serving.swap_new_builds(wait=True) == []  # swapped once, not on every call
    serving.close()
