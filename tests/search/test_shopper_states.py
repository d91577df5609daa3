"""What a shopper sees when search cannot simply answer (the storefront issue):

- "A nonsense query ("qwzzxv") returns 100 'Related to your search' items and a guessed
  category; there is no zero-results state."
- "'laptop' shows no laptop in the top 24 although the facet counts 78 notebooks."
- "'cheap black office chair under 100' shows no chair: the chairs have no price, so the
  price filter drops them, and nothing says so."
- "Facet counts come from the long tail."

On the search fixture catalogue plus office chairs, two of them without a price.
"""

from __future__ import annotations

import json

import pytest

from shopsense.search import SearchService

pytest.importorskip("sentence_transformers")

CHAIRS = [
    {"id": "chair-1", "title": "Mesh Office Chair with Arms, Black", "category": ["Furniture", "Office Chairs"]},
    {"id": "chair-2", "title": "Executive Leather Office Chair, High Back, Black",
     "category": ["Furniture", "Office Chairs"]},
    {"id": "chair-3", "title": "Ergonomic Task Chair, Grey", "category": ["Furniture", "Office Chairs"],
     "price": 249.0},
    {"id": "mat-1", "title": "Office Chair Mat for Carpet", "category": ["Furniture", "Chair Mats"], "price": 39.0},
]


@pytest.fixture(scope="module")
def eng(fixture_path, tmp_path_factory):  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    rows = [json.loads(line) for line in fixture_path.read_text().splitlines() if line.strip()]
    e = Engine(tmp_path_factory.mktemp("states") / "home")
    e.add_products(rows + CHAIRS)
    e.build_index()
    yield e
    e.close()


def test_nonsense_gets_a_zero_results_state(eng) -> None:  # type: ignore[no-untyped-def]
    res = eng.search("qwzzxv", k=24)
    assert res.hits == []
    assert res.info["zero_results"] is True and res.info["total"] == 0
    assert res.info["query"]["category"] is None  # no guessed category
    assert res.info["suggestions"] == []
    cats = res.info["popular_categories"]
    assert cats[0] == {"name": "Sofas", "count": 17} and len(cats) >= 4
    assert "category" not in res.info["facets"]


def test_spelling_suggestions_name_queries_that_match(eng) -> None:  # type: ignore[no-untyped-def]
    s = eng.searcher.searcher
    sugg = eng.searcher.suggestions(s, "cordless drlil kit")
    assert sugg and sugg[0] == "cordless drill kit"
    assert eng.searcher.suggestions(s, "cordless drill") == []  # every word is known


def test_close_words_are_remembered_per_word_until_the_parser_is_fitted_again(eng) -> None:  # type: ignore[no-untyped-def]
    parser = eng.searcher.searcher.parser
    first = parser.close_words("drlil", 3)
    assert "drill" in first and ("drlil", 3) in parser._close  # difflib's ~20 ms pass, once
    first.append("changed by the caller")
    assert parser.close_words("drlil", 3) == first[:-1]  # the remembered answer is not shared
    parser._close[("drlil", 3)] = ["stale"]
    assert parser.close_words("drlil", 3) == ["stale"]  # served from memory...
    parser.fit(eng.catalog().products)
    assert "drill" in parser.close_words("drlil", 3)  # ...until a new catalogue is fitted


def test_meaning_only_matches_are_labelled_low_confidence(eng) -> None:  # type: ignore[no-untyped-def]
    res = eng.search("screwdriver", k=10)  # no product has the word; drills are close in meaning
    assert res.hits and res.info["low_confidence"] is True
    assert {h.product.category[-1] for h in res.hits} == {"Drills"}
    weak = [h for h in res.hits if h.evidence.get("low_confidence")]
    assert all(h.reason == "Might be related to your search" for h in weak)
    assert eng.search("drill", k=5).info["low_confidence"] is False


def test_facets_count_the_relevant_results_not_the_long_tail(eng) -> None:  # type: ignore[no-untyped-def]
    res = eng.search("drill", k=50)
    assert res.info["facets"]["category"] == {"Drills": 8}
    assert res.info["total"] == len(res) == 8
    assert {h.product.category[-1] for h in res.hits} == {"Drills"}


def test_the_product_type_leads_and_is_the_understood_category(eng) -> None:  # type: ignore[no-untyped-def]
    res = eng.search("armchair", k=5)
    assert res.info["query"]["category"] == "Office Chairs"
    assert res.hits[0].product.category[-1] == "Office Chairs"
    plain = eng.search("armchair", k=5, category_boost=0.0)
    assert plain.info["query"]["category"] == "Office Chairs"  # the intent is still what it understood


def test_a_price_in_the_query_says_what_it_removed(eng) -> None:  # type: ignore[no-untyped-def]
    res = eng.search("black office chair under 100", k=10)
    assert not {"chair-1", "chair-2", "chair-3"} & set(res.ids)  # the filter stands...
    note = res.info["constraint_note"]  # ...and says what it took away
    assert note["filters"] == {"price": {"max": 100.0}}
    assert note["no_price"] == 2 and note["out_of_range"] == 1 and note["removed"] == 3
    assert note["query"] == "black office chair" and note["category"] == "Office Chairs"
    shown = eng.search(note["query"], k=10)  # what "show them" runs
    assert {"chair-1", "chair-2"} <= set(shown.ids)
    assert "constraint_note" not in eng.search("black office chair", k=10).info


def test_index_round_trip_keeps_the_states(eng) -> None:  # type: ignore[no-untyped-def]
    fresh = SearchService(eng)
    assert fresh.load()
    a, b = fresh.search("screwdriver", k=10), eng.searcher.search("screwdriver", k=10)
    assert a.ids == b.ids and a.info["facets"] == b.info["facets"]
