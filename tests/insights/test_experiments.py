"""Assignment, SRM, intervals, CUPED (on the real Online Retail invoices), the experiment
book and report, and team-draft interleaving."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime

import numpy as np
import pytest

from shopsense.errors import NotFoundError, ValidationError
from shopsense.insights import (
    HOLDOUT,
    TEAM_A,
    TEAM_B,
    Experiment,
    ExperimentBook,
    Variant,
    assign,
    bootstrap_diff,
    credit,
    cuped,
    delta_ratio_diff,
    encode_teams,
    experiment_report,
    preference,
    srm_check,
    team_draft,
)
from shopsense.store import Exposure, SQLiteStore


def _exp(**kw: object) -> Experiment:
    return Experiment(name="fusion", variants=[Variant(name="A"), Variant(name="B", search={"dense_weight": 0.6})],
                      salt="pepper", **kw)


# -- assignment and the sample-ratio check ------------------------------------------------
def test_assignment_is_sticky_balanced_and_honours_the_holdout() -> None:
    exp = _exp(holdout=0.1)
    users = [f"user-{i}" for i in range(20_000)]
    arms = [assign(exp, u) for u in users]
    assert arms == [assign(exp, u) for u in users]  # sticky
    c = Counter(arms)
    assert abs(c[HOLDOUT] / len(users) - 0.1) < 0.01
    assert abs(c["A"] / len(users) - 0.45) < 0.015 and abs(c["B"] / len(users) - 0.45) < 0.015
    assert not srm_check(dict(c), exp.shares()).mismatch
    # another salt is an independent split
    other = [assign(_exp().model_copy(update={"salt": "salt2"}), u) for u in users[:2000]]
    agree = np.mean([a == b for a, b in zip(arms[:2000], other) if a != HOLDOUT])
    assert 0.4 < agree < 0.6


def test_weights_set_the_shares() -> None:
    exp = Experiment(name="w", variants=[Variant(name="A", weight=3), Variant(name="B")], salt="x")
    c = Counter(assign(exp, f"u{i}") for i in range(20_000))
    assert abs(c["A"] / 20_000 - 0.75) < 0.015


def test_a_skewed_assignment_is_flagged() -> None:
    """The classic SRM: B's page fails to log for some shoppers (here 6% of them)."""
    exp = _exp()
    rng = np.random.default_rng(0)
    c = Counter(a for u in range(20_000) if (a := assign(exp, f"u{u}")) == "A" or rng.random() > 0.06)
    res = srm_check(dict(c), exp.shares())
    assert res.mismatch and res.p_value < 1e-4
    report = experiment_report(exp, [_row(f"u{u}", a) for u, a in enumerate(c.elements())])
    assert report["srm"]["mismatch"] and report["trust"].startswith("sample ratio mismatch")
    assert not srm_check({"A": 10_050, "B": 9_950}, {"A": 0.5, "B": 0.5}).mismatch


def _row(user: str, arm: str, kind: str = "impression", **kw: object) -> dict:
    base = {"kind": kind, "list_id": f"{user}-{kind}", "user_key": user, "session_id": None, "surface": "search",
            "variant": arm, "experiment": "fusion", "query": "q", "items": ["x"], "n_results": 1, "item_id": None,
            "position": None, "price": None, "quantity": 1, "ts": 0.0}
    return {**base, **kw}


# -- intervals --------------------------------------------------------------------------
def test_bootstrap_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(60):
        a, b = rng.poisson(1.0, 400), rng.poisson(1.2, 400)
        iv = bootstrap_diff(a, b, n_boot=400, seed=i)
        hits += iv.low <= 0.2 <= iv.high
        assert iv.low < iv.estimate < iv.high
    assert hits >= 52  # ~95% of 60


def test_delta_method_matches_a_simulation() -> None:
    rng = np.random.default_rng(2)

    def arm(p: float, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        imps = rng.integers(1, 20, n)
        return rng.binomial(imps, p), imps

    diffs = []
    for _ in range(300):
        (ca, ia), (cb, ib) = arm(0.10), arm(0.11)
        diffs.append(cb.sum() / ib.sum() - ca.sum() / ia.sum())
    (ca, ia), (cb, ib) = arm(0.10), arm(0.11)
    iv = delta_ratio_diff(ca, ia, cb, ib)
    assert (iv.high - iv.low) / 3.92 == pytest.approx(np.std(diffs), rel=0.15)


# -- CUPED on a real event log ---------------------------------------------------------------
def online_retail_units(root):  # type: ignore[no-untyped-def]
    """Invoices per customer in Sep-Dec 2011 (the metric) and in Mar-Aug 2011 (the pre-period)."""
    path = root / "baskets" / "online-retail" / "online_retail_random40k_rows.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    pre: dict[str, set[str]] = {}
    post: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if not r["CustomerID"]:
                continue
            t = datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S")
            cust = r["CustomerID"]
            if datetime(2011, 9, 1) <= t:
                post.setdefault(cust, set()).add(r["InvoiceNo"])
            elif datetime(2011, 3, 1) <= t:
                pre.setdefault(cust, set()).add(r["InvoiceNo"])
    users = sorted(post)
    return users, np.array([len(post[u]) for u in users], float), np.array([len(pre.get(u, ())) for u in users], float)


def test_cuped_reduces_variance_on_online_retail(datasets_root) -> None:  # type: ignore[no-untyped-def]
    users, y, x = online_retail_units(datasets_root)
    assert len(users) > 2000
    adj, theta, reduction = cuped(y, x)
    assert theta > 0 and reduction > 0.4  # measured: 0.61 (2,400 customers) on these files
    assert adj.mean() == pytest.approx(y.mean())
    # an A/A split by the experiment hash: the CUPED interval is narrower, and both cover 0
    exp = _exp()
    b = np.array([assign(exp, u) == "B" for u in users])
    plain = bootstrap_diff(y[~b], y[b], n_boot=1000)
    adjusted = bootstrap_diff(adj[~b], adj[b], n_boot=1000)
    assert plain.low < 0 < plain.high and adjusted.low < 0 < adjusted.high
    assert (adjusted.high - adjusted.low) < 0.9 * (plain.high - plain.low)


def test_cuped_without_signal_changes_nothing() -> None:
    adj, theta, red = cuped([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert theta == 0.0 and red == 0.0 and list(adj) == [1.0, 2.0, 3.0]
    with pytest.raises(ValidationError, match="'x' parameter of cuped"):
        cuped([1.0, 2.0], [1.0])


# -- the book and the report ----------------------------------------------------------------
def test_book_create_stop_delete(tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = ExperimentBook(tmp_path)
    book.create({"name": "fusion", "variants": [{"name": "A"}, {"name": "B", "search": {"mode": "bm25"}}],
                 "holdout": 0.05})
    with pytest.raises(ValidationError, match="already exists"):
        book.create(_exp())
    with pytest.raises(ValidationError, match="unknown search option 'colour'"):
        book.create({"name": "x", "variants": [{"name": "A"}, {"name": "B", "search": {"colour": 1}}]})
    with pytest.raises(ValidationError, match="exactly two"):
        book.create({"name": "y", "kind": "interleave", "variants": [{"name": "A"}, {"name": "B"}, {"name": "C"}]})
    assert [e.name for e in ExperimentBook(tmp_path).running()] == ["fusion"]
    assert book.stop("fusion").status == "stopped" and book.running() == []
    book.delete("fusion")
    with pytest.raises(NotFoundError):
        book.get("fusion")


def test_report_per_variant_with_intervals_and_cuped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """B's shoppers click and buy more; the report sees it, with CUPED from a pre-period."""
    exp = _exp()
    rng = np.random.default_rng(5)
    store = SQLiteStore(tmp_path / "s.sqlite3")
    rows, pre = [], {}
    for i in range(1500):
        u = f"u{i}"
        arm = assign(exp, u)
        habit = rng.gamma(2.0, 0.5)  # a shopper's own propensity: visible in the pre-period too
        pre[store.user_key(u)] = float(rng.poisson(habit * 2))
        for j in range(int(rng.integers(1, 6))):
            lid = f"{u}-{j}"
            rows.append(Exposure(kind="impression", list_id=lid, user_id=u, surface="search", variant=arm,
                                 experiment="fusion", items=["a", "b", "c"], timestamp=1e9 + i))
            p = min(0.9, 0.2 * habit * (1.3 if arm == "B" else 1.0))
            if rng.random() < p:
                rows.append(Exposure(kind="click", list_id=lid, user_id=u, surface="search", experiment="fusion",
                                     item_id="a", position=1, timestamp=1e9 + i + 1))
                if rng.random() < 0.5:
                    rows.append(Exposure(kind="purchase", list_id=lid, user_id=u, surface="search", item_id="a",
                                         position=1, price=10.0, experiment="fusion", timestamp=1e9 + i + 2))
    store.add_exposures(rows)
    rep = experiment_report(exp, store.exposures(), pre_period=pre, n_boot=500)
    assert rep["trust"] == "ok" and not rep["srm"]["mismatch"]
    a, b = rep["arms"]["A"], rep["arms"]["B"]
    assert a["users"] + b["users"] == 1500 and b["ctr"] > a["ctr"]
    assert b["ctr_diff"]["low"] > 0  # significant
    assert "user_key" not in repr(rep) and "u_" not in repr(rep)
    plain, adj = b["purchases_per_user_diff"], b["purchases_per_user_diff_cuped"]
    assert adj["variance_reduction"] > 0.1
    assert adj["high"] - adj["low"] < plain["high"] - plain["low"]
    store.close()


# -- team-draft interleaving ---------------------------------------------------------------------
def test_team_draft_properties() -> None:
    a, b = list("abcdefgh"), list("bdfhaceg")
    a0, b0 = list(a), list(b)
    rng = np.random.default_rng(0)
    for _ in range(200):
        r = team_draft(a, b, k=6, rng=rng)
        assert len(r.items) == 6 == len(set(r.items)) == len(r.teams)
        na, nb = r.teams.count(TEAM_A), r.teams.count(TEAM_B)
        assert abs(na - nb) <= 1
        # each team's picks are its own list's best remaining items, in its order
        for team, lst in ((TEAM_A, a), (TEAM_B, b)):
            picks = [x for x, t in zip(r.items, r.teams) if t == team]
            assert picks == sorted(picks, key=lst.index)
    assert a == a0 and b == b0  # inputs unchanged
    assert team_draft(list("ab"), [], k=5).items == ["a", "b"]  # a used-up team passes
    firsts = Counter(team_draft(a, b, k=2, rng=rng).teams[0] for _ in range(2000))
    assert abs(firsts[TEAM_A] - 1000) < 120  # the coin is fair


def test_credit_and_preference() -> None:
    teams = [TEAM_A, TEAM_B, TEAM_B, TEAM_A]
    assert credit(teams, []) == 0 and credit(teams, [1]) == 1 and credit(teams, [2, 3, 1]) == -1
    assert credit(teams, [1, 2]) == 0
    with pytest.raises(ValidationError):
        credit(teams, [5])
    pref = preference([1] * 60 + [-1] * 30 + [0] * 10)
    assert pref["wins_a"] == 60 and pref["ties"] == 10 and pref["preference"] == pytest.approx(0.3)
    assert pref["p_value"] < 0.01
    assert encode_teams(teams) == "ABBA"


def test_interleaving_prefers_the_better_ranker() -> None:
    """Shoppers who click relevant items (cascade): the ranker that puts them first wins."""
    rng = np.random.default_rng(3)
    relevant = {"r1", "r2", "r3"}
    good = ["r1", "r2", "x1", "r3", "x2", "x3"]
    bad = ["x1", "x2", "r3", "x3", "r1", "r2"]
    outcomes = []
    for _ in range(400):
        r = team_draft(good, bad, k=6, rng=rng)
        clicks = []
        for pos, item in enumerate(r.items, 1):
            if rng.random() < (0.7 if item in relevant else 0.05):
                clicks.append(pos)
                if rng.random() < 0.6:
                    break
        outcomes.append(credit(r.teams, clicks))
    pref = preference(outcomes)
    assert pref["wins_a"] > 2 * pref["wins_b"] and pref["p_value"] < 1e-6
