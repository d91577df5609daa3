"""The readers of shopsense.datasets that eval, the benchmarks and the loaders share:
one Judgments class, one judgments reader, one sequences reader, one basket-lines reader."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import shopsense.datasets as ds
import shopsense.eval as ev
from shopsense.errors import ValidationError

INDEX = {"p1": 0, "p2": 1, "p3": 2}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_one_judgments_class_and_reader_behind_eval() -> None:
    assert ev.Judgments is ds.Judgments and ev.read_judgments is ds.read_judgments
    assert ev.read_sequences is ds.read_sequences and ev.read_baskets is ds.read_baskets
    assert ev.read_items is ds.read_items and ev.Skips is ds.Skips


def test_load_judgments_keeps_rows_lines_and_report(tmp_path: Path) -> None:
    p = _write(tmp_path / "j.csv", "query,product_id,relevance\ndrill ,p1,3\n\ndrill,p1,1\nsaw,zz,2\nsaw,p3,2\n")
    j = ds.load_judgments(p)
    assert len(j) == 4 and j.query.tolist() == ["drill", "drill", "saw", "saw"]
    assert j.relevance.dtype == np.float64 and j.line.tolist() == [2, 4, 5, 6] and j.scale == (1.0, 3.0)
    assert j.report["blank_lines_skipped"] == 1 and j.report["columns"]["query"] == "query"
    assert j.queries() == ["drill", "saw"] and j.by_query()["drill"] == {"p1": 2.0}
    mean = j.graded(INDEX)
    assert mean.queries == ["drill", "saw"] and mean.gains == [{0: 1.0}, {2: 1.0}]
    assert mean.report["duplicate_pairs_averaged"] == 1 and mean.report["unknown_product_examples"] == ["line 5: 'zz'"]
    last = j.graded(INDEX, lowest=0.0, duplicates="last")
    assert last.gains == [{0: 1.0}, {2: 2.0}] and last.report["gain"] == "relevance - 0"
    assert last.report["duplicate_pairs_last_kept"] == 1
    assert ds.load_judgments(p, limit=2).query.tolist() == ["drill", "drill"]
    assert len(j.subset(j.query == "saw")) == 2
    with pytest.raises(ValidationError, match="none of the 2 queries judges a product"):
        j.graded({})


def test_read_sequences_limit(tmp_path: Path) -> None:
    p = _write(tmp_path / "s.txt", "u1 a b c\nu2 b c\nu3 d\n")
    assert ds.read_sequences(p, limit=2).user_ids == ["u1", "u2"]
    assert ds.read_sequences(p).item_ids == ["a", "b", "c", "d"]


def test_basket_lines_keep_repeats_read_baskets_does_not(tmp_path: Path) -> None:
    p = _write(tmp_path / "b.csv", "a,b,a\n\nc,,d\n")
    skips = ds.Skips()
    assert list(ds.basket_lines(p, skips=skips)) == [(1, ["a", "b", "a"]), (3, ["c", "", "d"])]
    assert skips.counts == {"empty_lines": 1}
    baskets, labels = ds.read_basket_file(p)
    assert [b.tolist() for b in baskets] == [[0, 1], [2, 3]] and labels == ["a", "b", "c", "d"]


def test_metrics_is_a_leaf_module() -> None:
    """``shopsense.metrics`` imports nothing of shopsense (models and eval both use it)."""
    import shopsense.metrics as m

    tree = ast.parse(Path(m.__file__).read_text(encoding="utf-8"))
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {x.split(".")[0] for x in mods} <= {"__future__", "collections", "numpy"}, mods
    assert ev.loo_metrics is m.loo_metrics and ev.ndcg_at_k is m.ndcg_at_k


def test_benchmark_and_cli_read_home_depot_alike(datasets_root: Path) -> None:
    """The search benchmark's loader and ``shopsense eval search``'s reader give the same
    queries and gains on a real slice (one judgments reader behind both)."""
    bench = ev.load_homedepot(datasets_root, max_products=300)
    index = {p.id: i for i, p in enumerate(bench.products)}
    judged = ds.read_judgments(datasets_root / "search" / "homedepot" / "judgments.csv", index)
    kept = {q: g for q, g in zip(judged.queries, judged.gains)}
    assert bench.queries and all(kept[q] == g for q, g in zip(bench.queries, bench.gains))
    assert len({p.id for p in bench.products}) == len(bench.products) <= 300
