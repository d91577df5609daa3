"""The cross-encoder re-ranking stage of search (issue 21): a tiny cross-encoder (the
offline MiniLM cut to one layer) trained for a few steps on real (query, product) pairs of
the search fixture, saved, exported to ONNX int8, loaded, and applied by the service only
when the ``search_cross_encoder`` setting is on."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from shopsense.config import Settings
from shopsense.errors import NotFittedError, ValidationError
from shopsense.search import (
    CrossEncoderReranker,
    ParsedQuery,
    SearchService,
    blend_scores,
    choose_blend,
    cross_groups,
    pair_text,
    query_text,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

# graded judgments over the fixture's real titles (gain = relevance - 1 on Home Depot's 1..3)
JUDGED = {
    "patio sofa": {"hd-106529": 2.0, "hd-109437": 2.0, "hd-122449": 2.0, "hd-117068": 1.67, "hd-109300": 1.0,
                   "hd-105778": 0.33, "hd-119450": 0.0},
    "cordless drill": {"hd-101684": 2.0, "hd-100759": 1.67, "hd-100776": 1.67, "hd-101149": 1.67,
                       "hd-100105": 1.33, "hd-102469": 1.33},
    "garden hose": {"hd-102428": 2.0, "hd-107188": 2.0, "hd-100968": 2.0, "hd-108015": 0.67},
    "leather sofa": {"hd-139051": 2.0, "hd-117380": 2.0, "hd-160904": 1.67, "hd-159649": 1.67, "hd-123780": 0.0},
    "samsung 55 tv": {"icecat-77949095": 2.0, "icecat-78316732": 2.0, "icecat-78584309": 1.33,
                      "icecat-4327321": 0.67, "icecat-1291731": 0.33},
}


def _gains(catalog) -> tuple[list[str], list[dict[int, float]]]:  # type: ignore[no-untyped-def]
    qs = list(JUDGED)
    return qs, [{catalog.index[pid]: g for pid, g in JUDGED[q].items()} for q in qs]


def _tiny(**kw) -> CrossEncoderReranker:  # type: ignore[no-untyped-def]
    params = {"layers": 1, "max_length": 32, "batch_pairs": 24, "epochs": 4, "lr": 2e-4, "head_lr": 5e-3,
              "warmup": 0.0, "depth": 8, "weight": 0.7, "threads": 1}
    return CrossEncoderReranker(**{**params, **kw})


@pytest.fixture(scope="module")
def lexical_searcher(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The fixture catalogue behind a lexical first stage (no encoder to build)."""
    from shopsense.engine import Engine

    from .conftest import fixture_products

    eng = Engine(tmp_path_factory.mktemp("cross_home"))
    eng.add_products(fixture_products())
    svc = SearchService(eng, dense=False)
    yield svc.searcher
    eng.close()


@pytest.fixture(scope="module")
def trained(lexical_searcher, tmp_path_factory):  # type: ignore[no-untyped-def]
    s = lexical_searcher
    queries, gains = _gains(s.catalog)
    groups = cross_groups(s, queries, gains, negatives=3, pool=10)
    losses: list[tuple[int, float]] = []
    model = _tiny().fit(groups.queries, groups.texts, groups.gains,
                        progress=lambda d: losses.append((d["epoch"], d["batch_loss"])))
    path = model.save(tmp_path_factory.mktemp("cross_model") / "search_cross_encoder", extra={"trained_on": "fixture"})
    return model, path, groups, losses


def test_pair_and_query_texts() -> None:
    from shopsense.catalog import Product

    assert pair_text(Product(id="a", title="Q70T 4K TV", brand="Samsung")) == "Samsung Q70T 4K TV"
    assert pair_text(Product(id="b", title="Samsung Q70T 4K TV", brand="Samsung")) == "Samsung Q70T 4K TV"
    parsed = ParsedQuery(original="Toliet  Seat under 50", text="toilet seat", corrections={"toliet": "toilet"})
    assert query_text(parsed) == "toilet seat under 50"  # corrected, nothing removed


def test_groups_hold_the_judged_products_and_unjudged_hard_negatives(lexical_searcher) -> None:  # type: ignore[no-untyped-def]
    s = lexical_searcher
    queries, gains = _gains(s.catalog)
    groups = cross_groups(s, queries, gains, negatives=3, pool=10)
    assert len(groups) == len(queries) and groups.stats["hard_negatives"] > 0
    for rows, g_arr, judged, texts in zip(groups.rows, groups.gains, gains, groups.texts):
        first = [int(r) for r in rows if int(r) in judged]
        assert set(first) == set(judged)  # every judged product (fewer than max_judged)
        for r, g in zip(rows.tolist(), g_arr.tolist()):
            assert g == pytest.approx(judged.get(r, 0.0))
        assert texts == [pair_text(s.catalog.products[int(r)]) for r in rows]
    # a query whose gains are all 0 has no listwise target: left out
    none = cross_groups(s, ["patio sofa"], [{s.catalog.index["hd-119450"]: 0.0}])
    assert len(none) == 0 and none.stats["skipped_no_gain"] == 1


def test_a_few_steps_lower_the_listwise_loss(trained) -> None:  # type: ignore[no-untyped-def]
    model, _, groups, losses = trained
    assert model.training_["steps"] == len(losses) >= 4
    assert model.training_["pairs"] == groups.pairs
    first = np.mean([x for e, x in losses if e == 0])
    last = np.mean([x for e, x in losses if e == model.epochs - 1])
    assert last < first
    # the training queries' best judged product is scored above their hard negatives
    wins = 0
    for q, texts, g in zip(groups.queries, groups.texts, groups.gains):
        sc = model.score(q, texts)
        wins += int(sc[int(np.argmax(g))] > sc[g == 0].max()) if (g == 0).any() else 1
    assert wins >= len(groups) - 1


def test_save_load_round_trip_and_onnx_int8_orders_like_torch(trained) -> None:  # type: ignore[no-untyped-def]
    model, path, groups, _ = trained
    assert (path / "model" / "model.safetensors").is_file() and (path / "onnx" / "model_int8.onnx").is_file()
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.bin"))
    meta = json.loads((path / "manifest.json").read_text())
    assert meta["params"]["layers"] == 1 and meta["trained_on"] == "fixture" and meta["training"]["steps"] >= 4
    back = CrossEncoderReranker.load(path, backend="torch")
    fp32 = CrossEncoderReranker.load(path, backend="onnx")
    int8 = CrossEncoderReranker.load(path)  # the serving default
    assert back.params() == model.params()
    for q, texts in zip(groups.queries, groups.texts):
        ref = model.score(q, texts)
        np.testing.assert_allclose(back.score(q, texts), ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fp32.score(q, texts), ref, rtol=1e-3, atol=1e-3)
        q8 = int8.score(q, texts)
        # int8 keeps the order: rank correlation with torch's scores, and the same best text
        rc = np.corrcoef(np.argsort(np.argsort(ref)), np.argsort(np.argsort(q8)))[0, 1]
        assert rc > 0.8, (q, ref, q8)
        assert int(np.argmax(q8)) == int(np.argmax(ref)) or ref.max() - ref[int(np.argmax(q8))] < 0.05


def test_rerank_blends_the_head_and_keeps_the_evidence(trained, lexical_searcher) -> None:  # type: ignore[no-untyped-def]
    model, _, _, _ = trained
    s = lexical_searcher
    r = s.retrieve("patio sofa", k=20)
    rows_before, scores_before = r.rows.copy(), r.scores.copy()
    out = model.rerank(s, r, depth=6)
    np.testing.assert_array_equal(r.rows, rows_before)  # the input is not changed
    np.testing.assert_array_equal(r.scores, scores_before)
    n = min(6, len(r.rows))
    assert out.extra["cross_reranked"] == n
    assert sorted(out.rows[:n].tolist()) == sorted(r.rows[:n].tolist())
    np.testing.assert_array_equal(out.rows[n:], r.rows[n:])  # the tail keeps its order
    assert np.all(np.diff(out.scores) <= 0)
    moved = {int(row): j for j, row in enumerate(r.rows)}
    cross = model.score_rows(s, r.parsed, r.rows[:n])
    for j, row in enumerate(out.rows):
        assert out.lexical[j] == r.lexical[moved[int(row)]]
        assert out.extra["before_cross"][j] == r.scores[moved[int(row)]]
        if j < n:
            assert out.extra["cross"][j] == pytest.approx(cross[moved[int(row)]])
    want = np.argsort(-blend_scores(r.scores[:n], cross, model.weight), kind="stable")
    np.testing.assert_array_equal(out.rows[:n], r.rows[:n][want])
    # weight 0 keeps the previous order
    np.testing.assert_array_equal(model.rerank(s, r, depth=6, weight=0.0).rows, r.rows)


def test_choose_blend_picks_on_the_given_queries_and_prefers_the_smaller_depth() -> None:
    rows = [np.array([10, 11, 12, 13])]
    gains = [{13: 2.0}]
    previous = [np.array([4.0, 3.0, 2.0, 1.0])]
    cross = [np.array([0.0, 0.1, 0.2, 5.0])]  # only the cross-encoder sees that 13 is right
    out = choose_blend(rows, previous, cross, gains, depths=[2, 4], weights=[0.0, 0.5, 1.0])
    assert out["depth"] == 4 and out["weight"] == 1.0 and out["ndcg@10"] == pytest.approx(1.0)
    assert out["previous_ndcg@10"] < 1.0 and len(out["grid"]) == 6
    same = choose_blend(rows, previous, [np.zeros(4)], gains, depths=[2, 4], weights=[0.0])
    assert same["depth"] == 2  # a tie goes to the cheaper depth


def test_bad_parameters_read_the_standard_way() -> None:
    with pytest.raises(ValidationError, match="The 'weight' parameter of CrossEncoderReranker must be"):
        CrossEncoderReranker(weight=1.5).fit(["q"], [["a", "b"]], [[1.0, 0.0]])
    with pytest.raises(ValidationError, match="'backend' parameter"):
        CrossEncoderReranker.load("nowhere", backend="tensorflow")
    with pytest.raises(NotFittedError):
        CrossEncoderReranker().score("q", ["a"])


def test_missing_or_damaged_model_fails_clearly(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    _, path, _, _ = trained
    with pytest.raises(NotFittedError, match="shopsense tune --cross-encoder"):
        CrossEncoderReranker.load(tmp_path / "nothing")
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    (bad / "onnx" / "model_int8.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValidationError, match="could not be loaded"):
        CrossEncoderReranker.load(bad)
    (bad / "onnx" / "model_int8.onnx").unlink()
    with pytest.raises(ValidationError, match="has no onnx/model_int8.onnx"):
        CrossEncoderReranker.load(bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        CrossEncoderReranker.load(bad)
    (bad / "manifest.json").write_text(json.dumps({"format": "something/9", "params": {}}))
    with pytest.raises(ValidationError, match="format"):
        CrossEncoderReranker.load(bad)


def test_service_applies_it_only_when_the_setting_is_on(trained, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from shopsense.engine import Engine

    from .conftest import fixture_products

    model, path, _, _ = trained
    assert Settings().search_cross_encoder is False
    q = "patio sofa"
    with Engine(tmp_path / "off") as eng:
        eng.add_products(fixture_products())
        svc = SearchService(eng, dense=False)
        shutil.copytree(path, svc.cross_encoder_dir)  # saved, but the setting is off
        assert svc.cross_encoder is None
        res = svc.search(q, k=8)
        assert "cross_encoder" not in res.info
        plain = [h.id for h in res.hits]

    with Engine(tmp_path / "on", search_cross_encoder=True) as eng:
        eng.add_products(fixture_products())
        svc = SearchService(eng, dense=False)
        with caplog.at_level(logging.WARNING):
            assert svc.cross_encoder is None  # on, nothing saved: the previous stages answer
        assert "no model is saved" in caplog.text
        assert [h.id for h in svc.search(q, k=8).hits] == plain
        shutil.copytree(path, svc.cross_encoder_dir)
        res = svc.search(q, k=8)
        info = res.info["cross_encoder"]
        assert info["reranked"] == min(model.depth, 8) or info["reranked"] >= 2
        assert sorted(h.id for h in res.hits) == sorted(plain) or len(res.hits) == len(plain)
        s = svc.searcher
        want = model.rerank(s, s.retrieve(q, k=8)).rows
        keep = [eng.catalog().ids[int(r)] for r in want]
        assert [h.id for h in res.hits] == [i for i in keep if i in {h.id for h in res.hits}]

    with Engine(tmp_path / "depth", search_cross_encoder=True, search_cross_encoder_depth=3) as eng:
        eng.add_products(fixture_products())
        svc = SearchService(eng, dense=False)
        shutil.copytree(path, svc.cross_encoder_dir)
        assert svc.search(q, k=8).info["cross_encoder"]["reranked"] == 3

    with Engine(tmp_path / "damaged", search_cross_encoder=True) as eng:
        eng.add_products(fixture_products())
        svc = SearchService(eng, dense=False)
        shutil.copytree(path, svc.cross_encoder_dir)
        (svc.cross_encoder_dir / "onnx" / "model_int8.onnx").unlink()
        res = svc.search(q, k=8)  # searches go on, in the previous stages' order, and say why
        assert "model_int8.onnx" in res.info["cross_encoder"]["error"]
        assert [h.id for h in res.hits] == plain


def test_tune_cross_encoder_command_trains_chooses_the_blend_and_saves_where_search_loads_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    from typer.testing import CliRunner

    from shopsense.cli import app
    from shopsense.engine import Engine

    from .conftest import fixture_products

    home = tmp_path / "home"
    with Engine(home) as eng:
        eng.add_products(fixture_products())
    lines = ["query,id,rel"] + [f"{q},{pid},{1 + g}" for q, gs in JUDGED.items() for pid, g in gs.items()]
    (tmp_path / "judgments.csv").write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    r = runner.invoke(app, ["tune", "--cross-encoder", "--cross-layers", "1", "--judgments",
                            str(tmp_path / "judgments.csv"), "--home", str(home), "--query-col", "query",
                            "--id-col", "id", "--rel-col", "rel", "--val-fraction", "0.4", "--max-minutes", "0.1"])
    assert r.exit_code == 0, r.output
    assert "search_cross_encoder = true" in " ".join(r.output.split())
    meta = json.loads((home / "models" / "search_cross_encoder" / "manifest.json").read_text())
    assert meta["params"]["layers"] == 1 and meta["blend_selection"]["depth"] in (5, 10, 20)
    assert meta["params"]["depth"] == meta["blend_selection"]["depth"]
    with Engine(home, search_cross_encoder=True) as eng:
        assert "cross_encoder" in eng.search("patio sofa", k=3).info
    r = runner.invoke(app, ["tune", "--cross-encoder", "--home", str(home)])
    assert r.exit_code != 0 and "--judgments" in r.output
