"""Every lesson of the course runs on its smallest slice, its exercise check accepts the
reference answer, and the check has teeth: a wrong answer fails it.

The lessons read the public datasets (``../shared/datasets``); lessons 8 and 9 need only the
repository (the bundled demo sample, the committed benchmark results)."""

from __future__ import annotations

import pytest


def _run(mod, size, wrong, **kw):  # type: ignore[no-untyped-def]
    result = mod.main(size, **kw)
    mod.exercise_check(result)
    with pytest.raises(AssertionError):
        mod.exercise_check(result, solution=wrong)
    return result


def test_lesson_01_catalogue(lesson, datasets_root):  # type: ignore[no-untyped-def]
    res = _run(lesson("01_catalogue"), 1500, lambda raw: -1)
    assert res["products"] > 0 and res["stored_events"] > 0
    # the raw export holds guest checkouts (no customer id): rejected with line and field
    assert any(field == "user_id" for field, _ in res["reasons"])


def test_lesson_02_search(lesson, datasets_root):  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")

    def bm25_top(result):  # type: ignore[no-untyped-def]
        bench = result["bench"]
        return bench.queries[0], bench.products[result["ranked"]["bm25"][0][0]].id

    res = _run(lesson("02_search"), 200, bm25_top)
    assert set(res["ndcg"]) == {"bm25", "bm25 + understanding", "dense (MiniLM)", "hybrid + understanding"}
    assert all(0.0 < v <= 1.0 for v in res["ndcg"].values())


def test_lesson_03_tune_smoke(lesson, datasets_root):  # type: ignore[no-untyped-def]
    """Pairs, the by-query split and the off-the-shelf baseline; tuning and ONNX are slow."""
    pytest.importorskip("sentence_transformers")

    def by_pair(pairs):  # type: ignore[no-untyped-def]
        n = len(pairs)
        return list(range(0, n, 2)), list(range(1, n, 2))  # a query's pairs land on both sides

    res = _run(lesson("03_tune"), 200, by_pair, tune_seconds=0, compress=False)
    assert 0.0 < res["before"] <= 1.0 and "after" not in res


@pytest.mark.slow
def test_lesson_03_tune_full(lesson, datasets_root):  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    mod = lesson("03_tune")
    res = mod.main(200, tune_seconds=20, compress=True)
    assert {"after", "int8", "ms_per_query"} <= set(res)
    assert abs(res["int8"] - res["after"]) < 0.1  # int8 keeps the tuned model's quality


def test_lesson_04_recommend(lesson, datasets_root):  # type: ignore[no-untyped-def]
    pytest.importorskip("lightgbm")
    pytest.importorskip("sentence_transformers")
    res = _run(lesson("04_recommend"), 80, lambda model, hists, targets: 1.0)
    assert [r["model"] for r in res["table"]][-1] == "LambdaMART stack"
    ease = res["cold"][0]["Hit@10 on cold items"]
    assert ease == 0.0  # collaborative filtering cannot recommend what nobody bought


def test_lesson_05_bundles(lesson, datasets_root):  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    res = _run(lesson("05_bundles"), 300, lambda X, i, j: 1.0)
    assert res["price"][res["bundle"]].sum() <= res["budget"] + 1e-9


def test_lesson_06_rerank(lesson, datasets_root):  # type: ignore[no-untyped-def]
    from shopsense.rerank import RuleSet

    res = _run(lesson("06_rerank"), 200, lambda hits, catalog, promote, hide: RuleSet())
    plain, *diverse = res["diversity"]
    assert all(d["ILD@10"] >= plain["ILD@10"] for d in diverse)  # diversity buys variety
    assert res["fair"].feasible


def test_lesson_07_measure(lesson, datasets_root):  # type: ignore[no-untyped-def]
    res = _run(lesson("07_measure"), 200, lambda teams, clicked: 0, shoppers=400)
    healthy, broken = res["srm"]
    assert not healthy.mismatch and broken.mismatch
    assert 0.0 < res["cuped"] < 1.0


def test_lesson_08_assistant(lesson):  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    res = _run(lesson("08_assistant"), 80, lambda reworded, answer: set())
    intents = [a.intent for a in res["answers"]]
    assert "policy" in intents and intents[0] == "search"


def test_lesson_09_business(lesson):  # type: ignore[no-untyped-def]
    res = _run(lesson("09_business"), 0, lambda: 1.0)
    assert all(r["before"] > 0 and r["after"] > 0 for r in res["rows"])


def test_every_lesson_is_tested():  # type: ignore[no-untyped-def]
    from tests.docs.conftest import LESSONS

    scripts = sorted(p.stem for p in LESSONS.glob("[0-9][0-9]_*.py"))
    tested = sorted(name.removeprefix("test_lesson_").rsplit("_", 1)[0] if name.endswith(("_smoke", "_full"))
                    else name.removeprefix("test_lesson_") for name in globals() if name.startswith("test_lesson_"))
    assert sorted(set(tested)) == scripts
