"""``shopsense analytics | experiments | privacy`` on the demo home: the same figures as
the library, CSV with and without noise, experiments from create to stop."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

pytest.importorskip("typer")

from typer.testing import CliRunner

from shopsense.cli import app
from shopsense.insights import Analytics
from shopsense.store import SQLiteStore

runner = CliRunner()


@pytest.fixture()
def home(demo_home, tmp_path):  # type: ignore[no-untyped-def]
    dst = tmp_path / "home"
    shutil.copytree(demo_home[0], dst)
    return dst


def _run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_analytics_tables_match_the_library(home) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(_run("analytics", "top-queries", "--since", "2024-03-01", "--until", "2024-03-03", "--json",
                          "--home", str(home)))
    s = SQLiteStore(home / "store.sqlite3")
    want = Analytics(s, since=1709251200.0, until=1709251200.0 + 3 * 86400).top_queries()
    s.close()
    assert [(r["query"], r["searches"]) for r in out] == [(r["query"], r["searches"]) for r in want]
    text = _run("analytics", "daily", "--since", "2024-03-01", "--csv", "--home", str(home))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["day"] for r in rows] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    noisy = list(csv.DictReader(io.StringIO(_run("analytics", "daily", "--since", "2024-03-01", "--csv",
                                                 "--epsilon", "0.5", "--home", str(home)))))
    assert [r["day"] for r in noisy] == [r["day"] for r in rows] and "revenue" not in noisy[0]
    zero = json.loads(_run("analytics", "zero-results", "--since", "2024-03-01", "--json", "--home", str(home)))
    assert {r["query"] for r in zero} == {"unicorn saddle", "qzxv widget"}
    assert "zero-results" in _run("analytics", "zero-results", "--since", "2024-03-01", "--home", str(home))
    assert "shopper-" not in _run("analytics", "summary", "--since", "2024-03-01", "--home", str(home))


def test_experiments_and_privacy_commands(home) -> None:  # type: ignore[no-untyped-def]
    assert "started ab experiment 'fx'" in _run("experiments", "create", "fx", "-v", "A", "-v",
                                                  'B:{"mode": "bm25"}', "--holdout", "0.1", "--home", str(home))
    bad = runner.invoke(app, ["experiments", "create", "fy", "-v", "A", "-v", 'B:{"colour": 1}', "--home", str(home)])
    assert bad.exit_code == 2 and "unknown search option" in bad.output
    assert "sample ratio: chi2 0.00" in _run("experiments", "status", "fx", "--home", str(home))
    rep = json.loads(_run("experiments", "report", "fx", "--json", "--home", str(home)))
    assert set(rep["arms"]) == {"A", "B", "holdout"}
    assert "stopped 'fx'" in _run("experiments", "stop", "fx", "--home", str(home))
    data = json.loads(_run("privacy", "export", "shopper-3", "--home", str(home)))
    assert data["exposures"] and data["events"]
    out = _run("privacy", "retention", "--days", "365", "--home", str(home))
    assert "deleted" in out
    assert json.loads(_run("privacy", "export", "shopper-3", "--home", str(home)))["exposures"] == []
