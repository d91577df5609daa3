"""Analytics on the demo home checked against direct SQL counts on the store's file;
zero-result queries, last-touch attribution, catalogue health, CSV and DP export."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections import Counter

import pytest

from shopsense.insights import Analytics, private_table, to_csv
from shopsense.store import SQLiteStore
from tests.insights.conftest import NOTHING, T0


@pytest.fixture()
def store(demo_home):  # type: ignore[no-untyped-def]
    home, _, _ = demo_home
    s = SQLiteStore(home / "store.sqlite3")
    yield s
    s.close()


@pytest.fixture()
def sql(demo_home):  # type: ignore[no-untyped-def]
    home, _, _ = demo_home
    con = sqlite3.connect(home / "store.sqlite3")
    yield lambda q, *a: con.execute(q, a).fetchall()
    con.close()


def test_daily_figures_match_sql(store, sql) -> None:  # type: ignore[no-untyped-def]
    daily = {r["day"]: r for r in Analytics(store).daily()}
    want = dict(sql("SELECT date(ts, 'unixepoch'), count(*) FROM exposures WHERE kind='impression' "
                    "AND surface='search' GROUP BY 1"))
    assert {d: r["searches"] for d, r in daily.items() if r["searches"]} == want and len(want) == 3
    sessions = dict(sql("SELECT date(ts, 'unixepoch'), count(DISTINCT session_id) FROM exposures GROUP BY 1"))
    assert {d: daily[d]["sessions"] for d in sessions} == sessions
    clicks = dict(sql("SELECT date(ts, 'unixepoch'), count(*) FROM exposures WHERE kind='click' GROUP BY 1"))
    assert {d: daily[d]["clicks"] for d in clicks} == clicks
    rev = dict(sql("SELECT date(ts, 'unixepoch'), round(sum(coalesce(price, 0) * quantity), 2) FROM events "
                   "WHERE type='purchase' AND ts >= ? GROUP BY 1", T0.timestamp()))
    assert {d: daily[d]["revenue"] for d in rev} == pytest.approx(rev)


def test_a_time_range_counts_only_its_days(store, sql) -> None:  # type: ignore[no-untyped-def]
    day2 = T0.timestamp() + 86400
    rows = Analytics(store, since=day2, until=day2 + 86400).daily()
    n = sql("SELECT count(*) FROM exposures WHERE kind='impression' AND surface='search' AND ts >= ? AND ts < ?",
            day2, day2 + 86400)[0][0]
    assert [r["searches"] for r in rows if r["searches"]] == [n]


def test_zero_result_queries_match_sql_and_say_what_was_understood(store, sql) -> None:  # type: ignore[no-untyped-def]
    rows = Analytics(store, understand=lambda q: {"text": q.replace("qzxv", "quiz"), "corrections": {}}
                     ).zero_result_queries()
    want = dict(sql("SELECT query, count(*) FROM exposures WHERE kind='impression' AND surface='search' "
                    "AND n_results = 0 GROUP BY query"))
    assert {r["query"]: r["zero_results"] for r in rows} == want
    assert set(want) == set(NOTHING)
    by_q = {r["query"]: r for r in rows}
    assert by_q["qzxv widget"]["understood"] == "searched as 'quiz widget'"
    assert by_q["unicorn saddle"]["understood"] == "taken as typed"
    assert by_q["unicorn saddle"]["clicks"] == 0


def test_top_and_low_click_queries_match_sql(store, sql) -> None:  # type: ignore[no-untyped-def]
    a = Analytics(store)
    top = a.top_queries(limit=50)
    want = dict(sql("SELECT query, count(*) FROM exposures WHERE kind='impression' AND surface='search' "
                    "GROUP BY query"))
    assert {r["query"]: r["searches"] for r in top} == want
    assert [r["searches"] for r in top] == sorted(want.values(), reverse=True)
    clicked = dict(sql("SELECT i.query, count(DISTINCT c.list_id) FROM exposures i JOIN exposures c "
                       "ON c.list_id = i.list_id AND c.kind = 'click' WHERE i.kind = 'impression' "
                       "AND i.surface='search' GROUP BY i.query"))
    for r in top:
        assert r["ctr"] == pytest.approx(clicked.get(r["query"], 0) / r["searches"])
        assert "user_key" not in r and "users" in r  # a count of shoppers, never who
    low = a.low_click_queries(min_searches=3)
    assert low and all(r["query"] not in NOTHING for r in low)
    assert [r["ctr"] for r in low] == sorted(r["ctr"] for r in low)
    assert a.top_queries(min_users=10_000) == []


def test_surface_and_position_rates_match_sql(store, sql) -> None:  # type: ignore[no-untyped-def]
    a = Analytics(store)
    surf = {r["surface"]: r for r in a.surfaces()}
    imps = dict(sql("SELECT surface, count(*) FROM exposures WHERE kind='impression' GROUP BY surface"))
    assert {s: surf[s]["impressions"] for s in imps} == imps
    lists_clicked = dict(sql("SELECT surface, count(DISTINCT list_id) FROM exposures WHERE kind='click' "
                             "GROUP BY surface"))
    for s, n in lists_clicked.items():
        assert surf[s]["ctr"] == pytest.approx(n / imps[s])
    conv = dict(sql("SELECT surface, count(DISTINCT list_id) FROM exposures WHERE kind='purchase' GROUP BY surface"))
    for s, n in conv.items():
        assert surf[s]["conversion_rate"] == pytest.approx(n / imps[s])
    pos = {r["position"]: r for r in a.positions(surface="search")}
    clicks = dict(sql("SELECT position, count(*) FROM exposures WHERE kind='click' AND surface='search' "
                      "GROUP BY position"))
    assert {p: pos[p]["clicks"] for p in clicks} == clicks
    shown1 = sql("SELECT count(*) FROM exposures WHERE kind='impression' AND surface='search' AND n_results >= 1")
    assert pos[1]["shown"] == shown1[0][0]
    assert pos[1]["ctr"] > pos[5]["ctr"]  # the simulated shoppers favour the top


def test_last_touch_attribution(store, sql, demo_home) -> None:  # type: ignore[no-untyped-def]
    _, exposures, events = demo_home
    rev = {r["surface"]: r for r in Analytics(store, since=T0.timestamp()).revenue()}
    # what the rule says, computed independently: a purchase event whose session holds a
    # touch (click/cart/purchase exposure) on the same item before it
    touched = {}
    for e in exposures:
        if e.kind != "impression":
            touched.setdefault((e.session_id, e.item_id), []).append((e.timestamp, e.surface))
    want: Counter[str] = Counter()
    money: Counter[str] = Counter()
    for ev in events:
        cands = [s for t, s in touched.get((ev.session_id, ev.item_id), []) if t <= ev.timestamp]
        surface = max(((t, s) for t, s in touched.get((ev.session_id, ev.item_id), []) if t <= ev.timestamp),
                      default=(None, "unattributed"))[1] if cands else "unattributed"
        want[surface] += 1
        money[surface] += (ev.price or 0) * ev.quantity
    assert {s: r["purchases"] for s, r in rev.items()} == dict(want)
    assert {s: r["revenue"] for s, r in rev.items()} == pytest.approx({s: round(v, 2) for s, v in money.items()})
    assert want["unattributed"] > 0 and want["search"] > 0
    total = sql("SELECT round(sum(coalesce(price, 0) * quantity), 2) FROM events WHERE type='purchase' AND ts >= ?",
                T0.timestamp())[0][0]
    assert sum(r["revenue"] for r in rev.values()) == pytest.approx(total)
    assert sum(r["share"] for r in rev.values()) == pytest.approx(1.0)


def test_attribution_needs_the_same_session_or_a_short_gap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.catalog import Event
    from shopsense.store import Exposure

    s = SQLiteStore(tmp_path / "s.sqlite3")
    t = T0.timestamp()
    s.add_exposures([Exposure(kind="click", list_id="L", user_id="u", surface="similar", item_id="p", position=3,
                              session_id="s1", timestamp=t),
                     Exposure(kind="click", list_id="M", user_id="u", surface="search", item_id="p", position=1,
                              session_id="s2", timestamp=t + 10)])
    s.add_events([Event(user_id="u", item_id="p", type="purchase", session_id="s1", timestamp=t + 60, price=10),
                  Event(user_id="u", item_id="p", type="purchase", timestamp=t + 4000, price=5),   # gap > 30 min
                  Event(user_id="v", item_id="p", type="purchase", session_id="s1", timestamp=t + 70, price=1)])
    rev = {r["surface"]: (r["purchases"], r["revenue"]) for r in Analytics(s).revenue()}
    # s1's purchase goes to the similar list although the search click came later (other session)
    assert rev == {"similar": (1, 10.0), "unattributed": (2, 6.0)}
    s.close()


def test_catalogue_health_matches_sql(store, sql) -> None:  # type: ignore[no-untyped-def]
    rows = {r["check"]: r for r in Analytics(store).catalogue_health()}
    n = sql("SELECT count(*) FROM products")[0][0]
    assert rows["no price"]["count"] == sql("SELECT count(*) FROM products WHERE json_extract(data, '$.price') "
                                            "IS NULL")[0][0]
    assert rows["no image"]["count"] == sql("SELECT count(*) FROM products WHERE "
                                            "coalesce(json_extract(data, '$.image_url'), '') = ''")[0][0]
    shown = {i for (items,) in sql("SELECT items FROM exposures WHERE kind='impression'")
             for i in __import__("json").loads(items)}
    assert rows["never shown"]["count"] == n - len(shown)
    assert all(r["products"] == n and len(r["examples"]) <= 10 for r in rows.values())


def test_csv_export_and_differential_privacy(store) -> None:  # type: ignore[no-untyped-def]
    a = Analytics(store)
    rows = a.top_queries()
    text = to_csv(rows)
    back = list(csv.DictReader(io.StringIO(text)))
    assert [r["query"] for r in back] == [r["query"] for r in rows]
    assert int(back[0]["searches"]) == rows[0]["searches"]
    noisy = private_table(rows, epsilon=1.0, seed=3)
    assert [r["query"] for r in noisy] == [r["query"] for r in rows]
    assert "ctr" not in noisy[0] and all(r["searches"] >= 0 for r in noisy)
    assert any(r["searches"] != o["searches"] for r, o in zip(noisy, rows))
    # Laplace(1/eps): over many cells the error is about the scale
    big = [{"count": 1000} for _ in range(4000)]
    err = [r["count"] - 1000 for r in private_table(big, epsilon=0.5, seed=1)]
    assert abs(sum(abs(e) for e in err) / len(err) - 2.0) < 0.2


def test_no_output_holds_a_user_id_or_key(store, demo_home) -> None:  # type: ignore[no-untyped-def]
    a = Analytics(store)
    text = repr([a.daily(), a.top_queries(), a.zero_result_queries(), a.low_click_queries(), a.surfaces(),
                 a.positions(), a.revenue(), a.catalogue_health(), a.summary()])
    assert "shopper-" not in text and "u_" not in text


def test_a_list_id_shared_by_two_shoppers_keeps_their_clicks_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A response cache can hand one list (one id) to several shoppers: a click counts for
    the impression of the shopper who clicked."""
    from shopsense.store import Exposure

    s = SQLiteStore(tmp_path / "s.sqlite3")
    t = T0.timestamp()
    s.add_exposures([Exposure(kind="impression", list_id="L", user_id=u, surface="search", query="pen",
                              items=["a", "b"], timestamp=t) for u in ("u1", "u2")]
                    + [Exposure(kind="click", list_id="L", user_id="u1", surface="search", item_id="b", position=2,
                                timestamp=t + 1)])
    a = Analytics(s)
    assert a.top_queries()[0]["ctr"] == 0.5 and a.surfaces()[0]["lists_clicked"] == 1
    assert [p["clicks"] for p in a.positions()] == [0, 1]
    s.close()
