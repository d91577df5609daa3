"""Query understanding on real product titles (tests/search/fixtures, see ATTRIBUTION.md)."""

from __future__ import annotations

import pytest

from shopsense.search import QueryParser

pytest.importorskip("symspellpy")


@pytest.fixture(scope="module")
def parser(products) -> QueryParser:  # type: ignore[no-untyped-def]
    return QueryParser(protected_words={"sofa", "couch", "television"}).fit(products)


def test_red_leather_sofa_under_500(parser: QueryParser) -> None:
    q = parser.parse("red leather sofa under 500")
    assert q.text == "red leather sofa"
    assert q.constraints["price"] == {"max": 500.0}
    assert q.filters["price"] == {"max": 500.0}  # the catalogue has prices, so it is a hard filter
    assert q.constraints["color"] == "red"
    assert q.constraints["attributes"] == {"material": "Leather"}
    assert q.corrections == {}


def test_samsung_tv_55_inch(parser: QueryParser) -> None:
    q = parser.parse("samsung tv 55 inch")
    assert q.constraints["brand"] == "Samsung"
    assert q.constraints["size"] == "55 inch"
    assert q.constraints["attributes"] == {"screen size": "55 inch"}
    assert "price" not in q.constraints and q.filters == {}


def test_cordless_drll_is_corrected(parser: QueryParser) -> None:
    q = parser.parse("cordless drll")
    assert q.corrections == {"drll": "drill"}
    assert q.text == "cordless drill"


@pytest.mark.parametrize("query,price,text", [
    ("garden hose between 20 and 40", {"min": 20.0, "max": 40.0}, "garden hose"),
    ("garden hose $20 to $40", {"min": 20.0, "max": 40.0}, "garden hose"),
    ("cordless drill over 100 dollars", {"min": 100.0}, "cordless drill"),
    ("tv less than $300", {"max": 300.0}, "tv"),
])
def test_price_phrases(parser: QueryParser, query: str, price: dict, text: str) -> None:
    q = parser.parse(query)
    assert q.constraints["price"] == price
    assert q.text == text


def test_sizes_are_not_prices(parser: QueryParser) -> None:
    q = parser.parse("sofa under 30 inch")
    assert "price" not in q.constraints
    assert q.constraints["size"] == "30 inch"


def test_known_and_protected_words_are_left_alone(parser: QueryParser) -> None:
    assert parser.parse("leather couch").corrections == {}  # 'couch' is protected, not -> 'pouch'
    assert parser.parse("milwaukee drill").corrections == {}


def test_synonyms_file_and_mined_compounds(products, tmp_path) -> None:  # type: ignore[no-untyped-def]
    syn = tmp_path / "synonyms.txt"
    syn.write_text("# shop synonyms\ntv, television\ncouch => sofa\n")
    p = QueryParser(synonyms_path=syn, protected_words={"couch", "television"}).fit(products)
    assert p.parse("television").synonyms == {"television": ["tv"]}
    assert p.parse("leather couch").synonyms == {"couch": ["sofa"]}
    # "garden hose" titles contain "lithium" etc.; compounds come from catalogue words
    assert all(" " in k or " " in v for k, v in p.compounds_.items())


def test_state_round_trip(parser: QueryParser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    parser.save(tmp_path / "q.json")
    back = QueryParser.load(tmp_path / "q.json", protected_words={"sofa", "couch", "television"})
    for q in ("red leather sofa under 500", "samsung tv 55 inch", "cordless drll"):
        assert back.parse(q) == parser.parse(q)
