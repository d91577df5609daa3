"""bench/experiments.py computes click and interleaving outcome distributions exactly;
they must agree with shoppers simulated one by one through the library's team_draft."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from shopsense.insights import credit, team_draft

BENCH = Path(__file__).resolve().parents[2] / "bench" / "experiments.py"


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_experiments", BENCH)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_exact_distributions_match_simulated_shoppers(bench) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    a = [int(x) for x in rng.permutation(30)[:10]]
    b = [int(x) for x in rng.permutation(30)[:7]]  # a shorter list
    gains = {int(i): float(g) for i, g in zip(range(30), rng.uniform(0, 2, 30).round(2))}
    merged = bench.interleavings(a, b)
    assert sum(p for p, _, _ in merged) == pytest.approx(1.0)
    d = bench.distributions([np.array(a)], [np.array(b)], [gains], "navigational", [merged])
    assert d["a"].sum() == pytest.approx(1.0) and d["interleave"].sum() == pytest.approx(1.0)
    n = 20_000
    wins = np.zeros(3)
    clicks_a = np.zeros(bench.K + 1)
    for _ in range(n):
        r = team_draft(a, b, k=bench.K, rng=rng)
        c = credit(r.teams, bench.simulate_clicks(np.array([gains.get(i, 0.0) for i in r.items]), "navigational",
                                                  rng))
        wins[0 if c > 0 else 1 if c < 0 else 2] += 1
        clicks_a[len(bench.simulate_clicks(np.array([gains[i] for i in a]), "navigational", rng))] += 1
    assert wins / n == pytest.approx(d["interleave"], abs=0.012)
    assert clicks_a / n == pytest.approx(d["a"], abs=0.012)


def test_impressions_needed_is_read_off_the_curve(bench) -> None:  # type: ignore[no-untyped-def]
    rates = np.clip(0.5 + 0.5 * np.log10(bench.N_GRID) / 4, 0, 1)  # crosses 0.95 at N = 10**3.6
    assert bench.needed(rates) == pytest.approx(10**3.6, rel=0.05)
    assert bench.needed(np.full(len(bench.N_GRID), 0.6)) is None
