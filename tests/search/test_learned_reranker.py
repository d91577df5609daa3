"""The learned re-ranking stage of search (issue 21): LambdaMART over (query, candidate)
features of the first stage's top candidates.

The tiny judged catalogue is built so that BM25 ranks the wrong product first: for each
product type ``t`` the right product is "<maker> t lamp ..." (a long title) and the
decoys are short accessory titles that repeat ``t`` without "lamp" ("t t shade"). BM25
loves the repeated rare word; only features that look at the query and the title
together (the query's last word in the title, coverage) tell them apart. Types are split
between training and held-out queries, and the number of decoys varies, so the
first-stage rank of the right product is no shortcut.
"""

from __future__ import annotations

import numpy as np
import pytest

from shopsense.catalog import Catalog, Product
from shopsense.config import Settings
from shopsense.errors import NotFittedError, ValidationError
from shopsense.search import (
    RERANK_FEATURES,
    HybridSearcher,
    LearnedReranker,
    LexicalIndex,
    QueryParser,
    SearchOptions,
    SearchService,
    judged_features,
    rerank_features,
)

pytest.importorskip("lightgbm")
pytest.importorskip("symspellpy")

TYPES = [f"{a}{b}" for a in ("zor", "quel", "vant", "brix", "plim", "trad", "wesk", "nolt")
         for b in ("ak", "ub", "ix", "om", "el")]  # 40 made-up product words
MAKERS = ("lumo", "brightco", "glowin", "halden")
PADDING = ("classic bedside reading light", "modern desk task light", "vintage table accent light")


def _catalogue() -> tuple[list[Product], list[str], list[dict[int, float]]]:
    products: list[Product] = []
    queries: list[str] = []
    gains: list[dict[int, float]] = []
    for i, t in enumerate(TYPES):
        right = len(products)
        products.append(Product(id=f"p{right}", title=f"{MAKERS[i % 4]} {t} lamp {PADDING[i % 3]}"))
        g = {right: 2.0}
        for d in range(i % 3):  # 0, 1 or 2 decoys: the right product's BM25 rank varies
            row = len(products)
            products.append(Product(id=f"p{row}", title=f"{t} {t} {('shade', 'cover')[d]}"))
            g[row] = 0.0
        queries.append(f"{t} lamp")
        gains.append(g)
    return products, queries, gains


@pytest.fixture(scope="module")
def judged():  # type: ignore[no-untyped-def]
    products, queries, gains = _catalogue()
    catalog = Catalog(products)
    lexical = LexicalIndex(k1=1.2, b=0.5).fit({"title": [p.title for p in products]})
    parser = QueryParser(analyzer=lexical.analyzer).fit(products)
    searcher = HybridSearcher(catalog, lexical, None, parser)  # lexical first stage: no encoder needed
    return searcher, products, queries, gains


def _split(queries: list[str], gains: list[dict[int, float]]):  # type: ignore[no-untyped-def]
    train = [i for i in range(len(queries)) if i % 4 != 3]
    test = [i for i in range(len(queries)) if i % 4 == 3]
    return ([queries[i] for i in train], [gains[i] for i in train]), ([queries[i] for i in test],
                                                                     [gains[i] for i in test])


def _fit(searcher, queries, gains) -> LearnedReranker:  # type: ignore[no-untyped-def]
    X, y, g = judged_features(searcher, queries, gains, depth=20)
    return LearnedReranker(depth=20, n_estimators=60, learning_rate=0.1, num_leaves=7, min_child_samples=3).fit(X, y, g)


def test_features_shape_and_meaning(judged) -> None:  # type: ignore[no-untyped-def]
    searcher, _, queries, gains = judged
    i = TYPES.index(TYPES[2])  # two decoys
    r = searcher.retrieve(queries[i], k=20)
    X = rerank_features(searcher, r, depth=20)
    assert X.shape == (min(20, len(r.rows)), len(RERANK_FEATURES))
    col = {f: j for j, f in enumerate(RERANK_FEATURES)}
    right = next(j for j, row in enumerate(r.rows[:20]) if gains[i].get(int(row)) == 2.0)
    decoy = next(j for j, row in enumerate(r.rows[:20]) if int(row) in gains[i] and gains[i][int(row)] == 0.0)
    assert X[right, col["coverage"]] == 1.0 and X[right, col["last_word"]] == 1.0
    assert X[decoy, col["coverage"]] == 0.5 and X[decoy, col["last_word"]] == 0.0
    assert X[decoy, col["bm25_title"]] > X[right, col["bm25_title"]]
    assert X[right, col["phrase"]] == 1.0 and X[decoy, col["phrase"]] == 0.0
    assert np.isnan(X[:, col["brand_ok"]]).all()  # the query names no brand


def test_learned_ranker_lifts_the_relevant_product_the_first_stage_ranked_lower(judged) -> None:  # type: ignore[no-untyped-def]
    searcher, _, queries, gains = judged
    (tq, tg), (hq, hg) = _split(queries, gains)
    model = _fit(searcher, tq, tg)
    lifted = 0
    for q, g in zip(hq, hg):
        right = next(row for row, v in g.items() if v == 2.0)
        first = searcher.rank(q, k=20)
        learned = model.rank(searcher, q, k=20)
        assert int(learned[0]) == right, q
        if int(first[0]) != right:
            lifted += 1
    # the held-out set holds queries whose decoys BM25 puts above the right product
    assert lifted >= 3


def test_rerank_returns_a_new_result_and_keeps_the_evidence(judged) -> None:  # type: ignore[no-untyped-def]
    searcher, _, queries, gains = judged
    model = _fit(searcher, queries, gains)
    r = searcher.retrieve(queries[2], k=20)
    rows_before, scores_before = r.rows.copy(), r.scores.copy()
    out = model.rerank(searcher, r)
    np.testing.assert_array_equal(r.rows, rows_before)  # the input is not changed
    np.testing.assert_array_equal(r.scores, scores_before)
    assert sorted(out.rows.tolist()) == sorted(r.rows.tolist())
    assert np.all(np.diff(out.scores) <= 0)
    moved = {int(row): j for j, row in enumerate(r.rows)}
    for j, row in enumerate(out.rows):
        assert out.lexical[j] == r.lexical[moved[int(row)]]  # each row's BM25 travels with it
        assert out.extra["first_stage"][j] == r.scores[moved[int(row)]]


def test_save_load_round_trip(judged, tmp_path) -> None:  # type: ignore[no-untyped-def]
    searcher, _, queries, gains = judged
    model = _fit(searcher, queries, gains)
    X, _, _ = judged_features(searcher, queries[:5], gains[:5], depth=20)
    path = model.save(tmp_path / "search_reranker", extra={"trained_on": "tiny"})
    back = LearnedReranker.load(path)
    np.testing.assert_allclose(back.score(X), model.score(X), rtol=1e-6)
    assert back.params() == model.params() and back.manifest_["trained_on"] == "tiny"
    with pytest.raises(NotFittedError):
        LearnedReranker.load(tmp_path / "nothing")
    with pytest.raises(NotFittedError):
        LearnedReranker().score(X)


def test_bad_parameters_read_the_standard_way(judged) -> None:  # type: ignore[no-untyped-def]
    searcher, _, queries, gains = judged
    X, y, g = judged_features(searcher, queries[:4], gains[:4], depth=20)
    with pytest.raises(ValidationError, match="The 'depth' parameter of LearnedReranker must be an int >= 1"):
        LearnedReranker(depth=0).fit(X, y, g)
    with pytest.raises(ValidationError, match="'groups'"):
        LearnedReranker().fit(X, y, g[:-1])


def test_setting_off_by_default_keeps_the_first_stage_and_on_uses_the_saved_model(judged, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    searcher, products, queries, gains = judged
    assert Settings().search_reranker is False
    (tq, tg), (hq, hg) = _split(queries, gains)
    q = next(q for q, g in zip(hq, hg) if int(searcher.rank(q, k=5)[0]) != next(r for r, v in g.items() if v == 2.0))
    right_id = products[next(r for r, v in hg[hq.index(q)].items() if v == 2.0)].id
    opts = SearchOptions(mode="hybrid")

    with Engine(tmp_path / "off") as eng:
        eng.add_products(products)
        svc = SearchService(eng, dense=False)
        assert svc.reranker is None
        res = svc.search(q, k=5, **vars(opts))
        assert "reranker" not in res.info
        plain = svc.searcher.rank(q, k=5, options=opts)
        assert [h.id for h in res.hits] == [eng.catalog().ids[int(r)] for r in plain][:len(res.hits)]
        assert res.hits[0].id != right_id  # today's order: a decoy first

    model = _fit(searcher, tq, tg)
    with Engine(tmp_path / "on", search_reranker=True) as eng:
        eng.add_products(products)
        svc = SearchService(eng, dense=False)
        assert svc.reranker is None  # on, but nothing saved yet: the first stage answers
        model.save(svc.reranker_dir)
        res = svc.search(q, k=5, **vars(opts))
        assert res.info["reranker"]["reranked"] >= 2
        assert res.hits[0].id == right_id


def test_tune_reranker_command_trains_and_saves_where_search_loads_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    from typer.testing import CliRunner

    from shopsense.cli import app
    from shopsense.engine import Engine

    products, queries, gains = _catalogue()
    home = tmp_path / "home"
    with Engine(home) as eng:
        eng.add_products(products)
    lines = ["query,id,rel"] + [f"{q},{products[row].id},{1 + g}" for q, gs in zip(queries, gains)
                                for row, g in gs.items()]
    (tmp_path / "judgments.csv").write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    r = runner.invoke(app, ["tune", "--reranker", "--judgments", str(tmp_path / "judgments.csv"), "--home", str(home),
                            "--query-col", "query", "--id-col", "id", "--rel-col", "rel", "--val-fraction", "0.25"])
    assert r.exit_code == 0, r.output
    assert "search_reranker = true" in r.output
    with Engine(home, search_reranker=True) as eng:
        res = eng.search(queries[0], k=3)
        assert "reranker" in res.info
    r = runner.invoke(app, ["tune", "--reranker", "--home", str(home)])
    assert r.exit_code != 0 and "--judgments" in r.output


def test_size_features_tell_the_asked_size_from_another() -> None:
    products = [Product(id="a", title="Charlotte 1/2 in. PVC Pipe"), Product(id="b", title="Charlotte 3/4 in. PVC Pipe"),
                Product(id="c", title="PVC pipe cutter")]
    lexical = LexicalIndex(k1=1.2, b=0.5).fit({"title": [p.title for p in products]})
    searcher = HybridSearcher(Catalog(products), lexical, None, QueryParser(analyzer=lexical.analyzer).fit(products))
    r = searcher.retrieve("1/2 inch pvc pipe", k=10)
    X = rerank_features(searcher, r, depth=10)
    col = {f: j for j, f in enumerate(RERANK_FEATURES)}
    by_id = {products[int(row)].id: X[j] for j, row in enumerate(r.rows)}
    assert by_id["a"][col["units_matched"]] == 1.0 and by_id["a"][col["unit_conflict"]] == 0.0
    assert by_id["b"][col["units_matched"]] == 0.0 and by_id["b"][col["unit_conflict"]] == 1.0
    assert by_id["c"][col["unit_conflict"]] == 0.0  # no size in the title: no conflict
    assert by_id["a"][col["char3"]] > by_id["c"][col["char3"]]
