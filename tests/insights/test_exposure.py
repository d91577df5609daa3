"""Every list the engine returns carries a list id and its surface; impressions and
actions recorded from it; a user's export and erasure; retention."""

from __future__ import annotations

import json
import time

import pytest

from shopsense.insights import Analytics, action_of, apply_retention, export_user, impression_of
from tests.insights.conftest import demo_products


@pytest.fixture(scope="module")
def engine(tmp_path_factory):  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    from shopsense.engine import Engine

    eng = Engine(tmp_path_factory.mktemp("exposure_home"))
    eng.add_products(demo_products()[:300])
    eng.build_index()
    yield eng
    eng.close()


def test_every_list_has_an_id_and_a_surface(engine) -> None:  # type: ignore[no-untyped-def]
    first, second = engine.search("stapler", k=5), engine.search("stapler", k=5)
    assert first.info["surface"] == "search" and len(first.info["list_id"]) == 32
    assert first.info["list_id"] != second.info["list_id"]  # one id per list shown
    assert engine.substitutes(first.hits[0].id, k=3).info["surface"] == "substitutes"


def test_impressions_and_actions_from_a_list(engine) -> None:  # type: ignore[no-untyped-def]
    res = engine.search("stapler", k=5)
    shown = impression_of(res, "shopper-1", session_id="s1", shown=3, variant="B", experiment="e1")
    assert shown.items == [h.id for h in res.hits][:3] and shown.query == "stapler"
    assert shown.list_id == res.info["list_id"] and shown.n_results == res.info["total"]
    click = action_of("click", res, res.hits[1].id, "shopper-1", session_id="s1")
    assert click.position == 2
    engine.store.add_exposures([shown, click])
    a = Analytics(engine.store)
    assert a.top_queries()[0]["query"] == "stapler" and a.positions()[1]["clicks"] == 1
    with pytest.raises(ValueError, match="item_id"):
        action_of("click", res, "not-in-the-list", "shopper-1")


def test_export_and_erase_a_user(engine) -> None:  # type: ignore[no-untyped-def]
    res = engine.search("pen", k=4)
    engine.store.add_exposures([impression_of(res, "erase-me", session_id="s9")])
    engine.add_events([{"user_id": "erase-me", "item_id": res.hits[0].id, "type": "click"}])
    out = export_user(engine.store, "erase-me")
    json.dumps(out)  # JSON-ready
    assert len(out["events"]) == 1 and len(out["exposures"]) == 1
    assert out["exposures"][0]["query"] == "pen" and "user_key" not in out["exposures"][0]
    engine.delete_user("erase-me")  # the engine's erasure reaches the exposures through the store
    out = export_user(engine.store, "erase-me")
    assert out["events"] == [] and out["exposures"] == []


def test_retention_deletes_old_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.catalog import Event
    from shopsense.store import Exposure, SQLiteStore

    s = SQLiteStore(tmp_path / "s.sqlite3")
    now = time.time()
    s.add_exposures([Exposure(kind="impression", list_id=f"L{d}", user_id="u", surface="search",
                              timestamp=now - d * 86400 - 1) for d in range(10)])
    s.add_events([Event(user_id="u", item_id="p", type="view", timestamp=now - d * 86400 - 1) for d in range(10)])
    out = apply_retention(s, days=3, now=now)
    assert out["removed"] == {"events": 7, "exposures": 7}
    assert len(s.exposures()) == 3 and s.count_events() == 3
    with pytest.raises(ValueError, match="'days' parameter"):
        apply_retention(s, days=0)
    s.close()
