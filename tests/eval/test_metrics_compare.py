import json

import numpy as np
import pytest

from shopsense import ValidationError
from shopsense.eval import (
    bootstrap_diff,
    compare,
    gini,
    load_result,
    loo_metrics,
    mrr,
    ndcg_at_k,
    recall_at_k,
)


def test_ndcg_known_values():
    gains = {1: 2.0, 2: 1.0}
    assert ndcg_at_k([1, 2], gains) == pytest.approx(1.0)
    # swapped order: (1 + 2/log2(3)) / (2 + 1/log2(3))
    assert ndcg_at_k([2, 1], gains) == pytest.approx((1 + 2 / np.log2(3)) / (2 + 1 / np.log2(3)))
    # a judged item never retrieved still counts in the ideal DCG
    assert ndcg_at_k([1], gains) < 1.0
    assert ndcg_at_k([7, 8], gains) == 0.0 and ndcg_at_k([1], {}) == 0.0


def test_recall_mrr_loo_gini():
    assert recall_at_k([1, 2, 3], {2, 9}, 2) == 0.5
    assert mrr([5, 6, 2], {2}) == pytest.approx(1 / 3)
    m = loo_metrics(np.array([[3, 1, 2], [4, 5, 6]]), np.array([1, 7]), k=3)
    assert m["recall@3"].tolist() == [1.0, 0.0]
    assert m["ndcg@3"][0] == pytest.approx(1 / np.log2(3))
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10.0])) == pytest.approx(0.75)


def test_bootstrap_interval_covers_the_true_difference():
    rng = np.random.default_rng(1)
    a = rng.random(400)
    b = a + 0.05 + rng.normal(0, 0.01, 400)
    diff, lo, hi = bootstrap_diff(a, b, seed=3)
    assert lo < 0.05 < hi and diff == pytest.approx(0.05, abs=0.005)
    _, lo0, hi0 = bootstrap_diff(a, a.copy())
    assert lo0 == hi0 == 0.0


def test_compare_files(tmp_path):
    units = {str(i): float(i % 2) for i in range(50)}
    a = {"ds": {"bm25": {"ndcg@10": 0.5}}, "_per_unit": {"ds": {"bm25": {"ndcg@10": units}}}}
    b = {"ds": {"bm25": {"ndcg@10": 0.6}},
         "_per_unit": {"ds": {"bm25": {"ndcg@10": {u: v + 0.1 for u, v in units.items()}}}}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    [d] = compare(load_result(tmp_path / "a.json"), load_result(tmp_path / "b.json"))
    assert d.n_units == 50 and d.diff == pytest.approx(0.1) and d.significant
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValidationError, match="line 1, column 2"):
        load_result(tmp_path / "bad.json")
    with pytest.raises(ValidationError, match="System 'x'"):
        compare(a, b, system_a="x", system_b="bm25")


def test_compare_cli(tmp_path):
    from typer.testing import CliRunner

    from shopsense.cli import app

    a = {"ds": {"s": {"ndcg@10": 0.5}}}
    b = {"ds": {"s": {"ndcg@10": 0.55}}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    res = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                              env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "+0.0500" in res.output and "no per-unit" in res.output
    res = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "zz.json")])
    assert res.exit_code == 2 and "No such result file" in res.output
