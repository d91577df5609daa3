"""SearchService / Engine.search on the fixture catalogue: behaviour, filters,
facets, persistence, incremental rebuilds and personalisation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shopsense.errors import ValidationError
from shopsense.results import ResultList
from shopsense.search import SearchService

pytest.importorskip("sentence_transformers")


def test_result_shape_and_understanding(built_engine) -> None:  # type: ignore[no-untyped-def]
    res = built_engine.search("red leather sofa under 500", k=5)
    assert isinstance(res, ResultList) and 0 < len(res) <= 5
    q = res.info["query"]
    assert q["constraints"]["price"] == {"max": 500.0} and q["constraints"]["color"] == "red"
    assert q["category"] == "Sofas"
    assert set(res.info) >= {"query", "facets", "total"}
    for h in res.hits:
        assert h.product is not None and h.product.price <= 500  # extracted price became a filter
        assert h.source in ("bm25", "dense", "hybrid")
        assert "bm25" in h.sources and "dense" in h.sources
        assert h.evidence["constraints"]["price"] == {"max": 500.0}
        assert set(h.evidence["matched_terms"]) <= {"red", "leather", "sofa"}
    top = res.hits[0]
    assert top.evidence["matched_terms"] and top.sources["bm25"] > 0
    # leather sofas under 500 lead
    assert any("Leather Sofa" in h.product.title or "Leather Vinyl Sofa" in h.product.title for h in res.hits[:3])


def test_typo_is_corrected_and_drills_returned(built_engine) -> None:  # type: ignore[no-untyped-def]
    res = built_engine.search("cordless drll", k=5)
    assert res.info["query"]["corrections"] == {"drll": "drill"}
    assert all("Drill" in h.product.title for h in res.hits)
    assert res.hits[0].evidence["matched_terms"] == ["cordless", "drill"]


def test_brand_and_size_boost(built_engine) -> None:  # type: ignore[no-untyped-def]
    res = built_engine.search("samsung tv 55 inch", k=3)
    for h in res.hits[:2]:
        assert h.product.brand == "Samsung" and h.product.attributes["screen size"] == "55 inch"
        assert h.evidence["constraints"]["brand"] == "Samsung"


def test_warm_analyses_every_product_ahead_without_changing_answers(built_engine) -> None:  # type: ignore[no-untyped-def]
    svc = built_engine.searcher
    s = svc.searcher
    s._words_cache.clear()
    before = built_engine.search("samsung tv 55 inch", k=5)
    lazy = dict(s._words_cache)
    assert lazy
    s._words_cache.clear()
    svc.warm()
    assert len(s._words_cache) == len(s.catalog)
    assert all(s._words_cache[r] == w for r, w in lazy.items())
    after = built_engine.search("samsung tv 55 inch", k=5)
    assert [h.product.id for h in after.hits] == [h.product.id for h in before.hits]
    assert [h.evidence for h in after.hits] == [h.evidence for h in before.hits]


def test_filters_are_honoured_and_facets_count_the_matches(built_engine) -> None:  # type: ignore[no-untyped-def]
    res = built_engine.search("tv", filters={"brand": ["Samsung", "LG"], "price": {"max": 300}}, k=50)
    assert len(res) > 0
    assert all(h.product.brand in ("Samsung", "LG") and h.product.price <= 300 for h in res.hits)
    f = res.info["facets"]
    assert sum(f["brand"].values()) == res.info["total"] == len(res)
    assert f["brand"] == {b: sum(h.product.brand == b for h in res.hits) for b in f["brand"]}
    res2 = built_engine.search("sofa", filters={"material": "Leather", "category": "Sofas"}, k=50)
    assert len(res2) > 0 and all(h.product.attributes.get("material") == "Leather" for h in res2.hits)
    assert built_engine.search("sofa", filters={"in_stock": True}, k=3).hits


def test_modes_and_fusions(built_engine) -> None:  # type: ignore[no-untyped-def]
    b = built_engine.search("garden hose", k=5, mode="bm25")
    assert all(h.source == "bm25" and h.sources["bm25"] > 0 for h in b.hits)
    d = built_engine.search("garden hose", k=5, mode="dense")
    assert [h.sources["dense"] for h in d.hits] == sorted((h.sources["dense"] for h in d.hits), reverse=True)
    r = built_engine.search("garden hose", k=5, fusion="rrf")
    assert "Hose" in r.hits[0].product.title
    with pytest.raises(ValidationError, match="mode"):
        built_engine.search("hose", mode="fuzzy")
    with pytest.raises(ValidationError, match="Unknown search option"):
        built_engine.search("hose", dense_wieght=1.0)
    with pytest.raises(ValidationError, match="query"):
        built_engine.search("   ")


def test_index_round_trip_gives_identical_results(built_engine) -> None:  # type: ignore[no-untyped-def]
    queries = ["red leather sofa under 500", "samsung tv 55 inch", "cordless drll", "hose"]
    before = [built_engine.search(q, k=10) for q in queries]
    fresh = SearchService(built_engine)
    t0 = time.time()
    assert fresh.load()  # the saved index matches the catalogue
    for q, b in zip(queries, before):
        a = fresh.search(q, k=10)
        assert a.ids == b.ids
        np.testing.assert_allclose([h.score for h in a.hits], [h.score for h in b.hits], rtol=1e-5)
        assert a.info["facets"] == b.info["facets"]
    assert time.time() - t0 < 30


def test_products_changed_rebuilds_and_encodes_only_new_texts(tmp_path, fixture_rows) -> None:  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    eng = Engine(tmp_path / "home")
    eng.add_products(fixture_rows[:12])
    eng.build_index()
    calls: list[int] = []
    enc = eng.encoder
    orig = enc.encode_documents

    def counting(texts, progress=False):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return orig(texts, progress)

    enc.encode_documents = counting  # type: ignore[method-assign]
    eng.add_products([{"id": "new-1", "title": "Makita 18-Volt LXT Lithium-Ion Cordless Drill Driver Kit",
                       "brand": "Makita", "price": 149.0}])
    assert eng.searcher._stale
    res = eng.search("makita drill", k=3)
    assert res.ids[0] == "new-1"
    assert calls == [1]  # the cache served the 12 unchanged products
    eng.delete_user("nobody")
    eng.close()


def test_personalisation_hook(built_engine) -> None:  # type: ignore[no-untyped-def]
    plain = built_engine.search("sofa", k=30)
    assert plain.info["personalized"] is False and "personal" not in plain.hits[0].sources
    wicker = [h.id for h in plain.hits if "Wicker" in h.product.title]
    assert wicker
    built_engine.add_events([{"user_id": "u-patio", "item_id": i, "type": "purchase"} for i in wicker[:2]])
    res = built_engine.search("sofa", user_id="u-patio", k=30, personal_weight=1.0)
    assert res.info["personalized"] is True
    assert all("personal" in h.sources and "affinity" in h.evidence for h in res.hits)
    # the user's taste (patio wicker) moves wicker sofas up
    rank = {i: r for r, i in enumerate(res.ids)}
    rank0 = {i: r for r, i in enumerate(plain.ids)}
    assert sum(rank[i] for i in wicker if i in rank) < sum(rank0[i] for i in wicker)
    assert built_engine.searcher.forget_user("u-patio") == 1
    assert built_engine.searcher.forget_user("u-patio") == 0
    # a user without events gets the plain ranking
    assert built_engine.search("sofa", user_id="stranger", k=30).ids == plain.ids


def test_lexical_only_index_still_protects_common_words(tmp_path, products) -> None:  # type: ignore[no-untyped-def]
    """Without a dense part, the parser still gets the encoder's vocabulary (read from
    vocab.txt, the model is not loaded), so 'couch' is not "corrected" to a catalogue word."""
    from shopsense.engine import Engine

    eng = Engine(tmp_path / "home")
    eng.add_products(products)
    svc = SearchService(eng, dense=False)
    svc.build()
    assert eng.encoder._model is None  # the vocabulary came from the file
    assert "couch" in svc.searcher.parser.protected_words
    assert svc.searcher.parser.parse("leather couch").corrections == {}
    reloaded = SearchService(eng, dense=False)
    assert reloaded.load() and reloaded.searcher.parser.parse("leather couch").corrections == {}
    eng.close()
