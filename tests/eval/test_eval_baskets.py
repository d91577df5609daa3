"""``shopsense eval baskets`` (issue 9) on real slices of Groceries and Online Retail:
figures equal a direct computation, the result feeds ``eval compare``, and malformed
input gives a clear error naming file, line and column, or a reported skip."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import DATASETS

GROCERIES = DATASETS / "baskets" / "groceries"
RETAIL = DATASETS / "baskets" / "online-retail"
runner = CliRunner()
SYSTEMS = {"popularity", "cooccurrence", "mlxtend_rules", "complement"}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    from shopsense.cli import app

    return runner.invoke(app, ["eval", "baskets", *args])


def _error(res) -> str:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def groceries_slice(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The first 3,000 Groceries baskets, one basket a line as shipped."""
    if not (GROCERIES / "groceries.csv").exists():
        pytest.skip(f"Groceries not found at {GROCERIES} (../shared/datasets beside the repo)")
    path = tmp_path_factory.mktemp("groceries") / "groceries3k.csv"
    path.write_text("\n".join((GROCERIES / "groceries.csv").read_text().splitlines()[:3000]) + "\n")
    return path


@pytest.fixture(scope="module")
def groceries_run(groceries_slice, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run") / "g.json"
    res = invoke("--baskets", str(groceries_slice), "--seed", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    return out, res.output


def test_figures_equal_a_direct_computation(groceries_slice, groceries_run) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import hide_one, read_baskets, split_baskets

    out, output = groceries_run
    doc = json.loads(out.read_text())
    ds = doc["groceries3k"]
    assert set(ds) == SYSTEMS  # no item file: no text, so no complement_no_text row
    # popularity by hand: counts on the training baskets, top 10 outside the visible items
    data = read_baskets(groceries_slice)
    sp = split_baskets(data.baskets, "random", 0.2, seed=1)
    cases = hide_one(sp.test, seed=1 + 3)
    counts = np.bincount(np.concatenate(sp.train), minlength=data.n_items).astype(float)
    hits, ndcg = [], []
    for ctx, t in zip(cases.contexts, cases.targets):
        s = counts.copy()
        s[ctx] = -np.inf
        top = list(np.argsort(-s, kind="stable")[:10])
        hits.append(float(t in top))
        ndcg.append(1 / np.log2(top.index(t) + 2) if t in top else 0.0)
    assert ds["popularity"]["hit@10"] == pytest.approx(np.mean(hits))
    assert ds["popularity"]["ndcg@10"] == pytest.approx(np.mean(ndcg), abs=0.01)  # ties may order differently
    per = doc["_per_unit"]["groceries3k"]["complement"]["hit@10"]
    assert len(per) == len(cases) == doc["_meta"]["n_test_cases"]
    assert np.mean(list(per.values())) == pytest.approx(ds["complement"]["hit@10"])
    # per-case ids are the test baskets' line numbers
    assert set(per) == {str(sp.test_rows[r] + 1) for r in cases.rows}
    assert doc["_meta"]["chosen_params_mlxtend"]["min_support"] in doc["_meta"]["support_grid"]
    assert ds["mlxtend_rules"]["n_rules"] > 0
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "mlxtend_rules" in output and "x)" in output


def test_compare_accepts_the_result(groceries_run) -> None:  # type: ignore[no-untyped-def]
    from shopsense.cli import app

    out, _ = groceries_run
    res = runner.invoke(app, ["eval", "compare", str(out), str(out), "--system-a", "mlxtend_rules",
                              "--system-b", "complement", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "hit@10" in res.output


@pytest.fixture(scope="module")
def retail_rows(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The first 4,000 rows of UCI Online Retail (InvoiceNo, StockCode, ..., InvoiceDate)."""
    src = RETAIL / "online_retail_first10k_rows.csv"
    if not src.exists():
        pytest.skip(f"Online Retail not found at {RETAIL} (../shared/datasets beside the repo)")
    path = tmp_path_factory.mktemp("retail") / "retail4k.csv"
    path.write_text("\n".join(src.read_text().splitlines()[:4001]) + "\n")
    return path


def _fake_vectors(texts, cache, encoder=None):  # type: ignore[no-untyped-def]
    """TF-IDF + SVD instead of the sentence encoder: real text, no model in a fast test."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(min_df=1).fit_transform(texts)
    v = TruncatedSVD(16, random_state=0).fit_transform(x).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def test_rows_file_time_split_and_item_file(retail_rows, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import read_baskets

    # the eval encodes item texts through the public shopsense.text.encode_cached
    monkeypatch.setattr("shopsense.text.encode_cached", lambda enc, texts, cache, **kw: (_fake_vectors(texts, cache),
                                                                                          len(texts)))
    out = tmp_path / "r.json"
    res = invoke("--baskets", str(retail_rows), "--items", str(RETAIL / "DERIVED_stockcode_description_lookup.csv"),
                 "--items-map", "StockCode=id", "--items-map", "Description=title", "--split", "time",
                 "--out", str(out), "--cache", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    meta = doc["_meta"]
    assert set(doc["retail4k"]) == SYSTEMS | {"complement_no_text"}
    assert meta["format"] == "rows" and meta["time_source"] == "time column"
    counts = meta["skips"]["baskets"]["counts"]
    # returns (quantity <= 0) and stock codes the description file lacks are left out, counted
    with retail_rows.open(newline="") as fh:
        returns = sum(float(r["Quantity"]) <= 0 for r in csv.DictReader(fh))
    assert counts["rows_with_quantity_<=0_(returns)"] == returns > 0
    assert counts["unknown_items"] > 0 and "unknown items" in " ".join(res.output.split())
    # the test baskets are the latest invoices
    data = read_baskets(retail_rows)
    test_ids = set(doc["_per_unit"]["retail4k"]["popularity"]["hit@10"])
    t = dict(zip(data.basket_ids, data.times))
    assert min(t[b] for b in test_ids) >= np.quantile(list(t.values()), 0.75)


# -- malformed input -------------------------------------------------------------------------------
def test_lines_file_skips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import read_baskets

    f = tmp_path / "b.csv"
    f.write_text("milk,bread\n\n,\nmilk,,eggs,milk\nbread\n")
    data = read_baskets(f)
    assert [list(b) for b in data.baskets] == [[0, 1], [0, 2], [1]]
    assert data.basket_ids == ["1", "4", "5"]
    assert data.skips.counts == {"empty_lines": 2, "empty_item_fields": 1, "repeated_items_in_baskets": 1}
    data = read_baskets(f, item_ids=["milk", "bread"])
    assert data.skips.counts["unknown_items"] == 1
    assert "b.csv:4, column 3: item 'eggs'" in " ".join(data.skips.examples)


def test_rows_file_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "rows.csv"
    f.write_text("InvoiceNo,Description\n1,pen\n")
    msg = _error(invoke("--baskets", str(f), "--out", str(tmp_path / "x.json")))
    assert "rows.csv: no item column" in msg and "['InvoiceNo', 'Description']" in msg
    f.write_text("order_id,item_id,quantity\n1,a,2\n1,b,two\n")
    msg = _error(invoke("--baskets", str(f), "--out", str(tmp_path / "x.json")))
    assert "rows.csv: line 3, column 'quantity': 'two' is not a number" in msg
    f.write_text("order_id,item_id,timestamp\n1,a,2024-01-01\n1,b,soon\n")
    msg = _error(invoke("--baskets", str(f), "--out", str(tmp_path / "x.json")))
    assert "rows.csv: line 3, column 'timestamp'" in msg and "'soon'" in msg


def test_too_few_items_per_basket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "single.csv"
    f.write_text("".join(f"item{i % 7}\n" for i in range(50)))
    assert "2 distinct items" in _error(invoke("--baskets", str(f), "--out", str(tmp_path / "x.json")))
    assert "No such baskets file" in _error(invoke("--baskets", str(tmp_path / "nope.csv")))
    assert "'random' or 'time'" in _error(invoke("--baskets", str(f), "--split", "sideways"))
