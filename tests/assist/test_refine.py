"""Reading constraints from a turn, and the filters and checks built from them."""

from __future__ import annotations

import pytest

from shopsense.assist import compile_filters, describe, read_turn, satisfies, strip_filler


@pytest.mark.parametrize("text, stated", [
    ("only HP", {"brand": "HP"}),
    ("HP only please", {"brand": "HP"}),
    ("from Canon", {"brand": "Canon"}),
    ("in black", {"colour": "black"}),
    ("something in grey", {"colour": "grey"}),
    ("with wifi", {"attributes": {"wi_fi": "yes"}}),
    ("with Wi-Fi", {"attributes": {"wi_fi": "yes"}}),
    ("without WLAN", {"attributes": {"wi_fi": "no"}}),
    ("under 200", {"price_max": 200.0}),
    ("less than $49.99", {"price_max": 49.99}),
    ("between 100 and 300 dollars", {"price_min": 100.0, "price_max": 300.0}),
    ("over 1000", {"price_min": 1000.0}),
    ("in stock", {"in_stock": True}),
    ("black HP under 150", {"brand": "HP", "colour": "black", "price_max": 150.0}),
])
def test_constraints_of_a_turn(lexicon, text, stated):  # type: ignore[no-untyped-def]
    tc = read_turn(text, lexicon)
    assert tc.stated == stated
    assert not tc.words, tc.words  # nothing left over for the query


def test_relative_price_drop_and_leftover_words(lexicon):  # type: ignore[no-untyped-def]
    assert read_turn("cheaper", lexicon).relative == "cheaper"
    assert read_turn("something less expensive", lexicon).relative == "cheaper"
    assert read_turn("more expensive ones", lexicon).relative == "pricier"
    assert read_turn("any brand", lexicon).drop == {"brand"}
    assert read_turn("forget the price", lexicon).drop == {"price"}
    assert read_turn("not HP", lexicon).drop == {"brand"}
    tc = read_turn("make it 18 volt please", lexicon)
    assert tc.text == "18 volt" and tc.stated == {}
    assert read_turn("only HP, with a 1/2 in. chuck", lexicon).text == "1/2 in. chuck"
    # a size is not a price
    assert read_turn("under 15 inch", lexicon).stated == {}


def test_strip_filler():
    assert strip_filler("I need a printer for a small office") == "printer for a small office"
    assert strip_filler("Hi, do you have any wireless mice?") == "wireless mice"
    assert strip_filler("I'm looking for a laptop bag") == "laptop bag"
    assert strip_filler("toner") == "toner"


def test_filters_and_satisfies_agree(lexicon, icecat_products):  # type: ignore[no-untyped-def]
    from shopsense.catalog import Catalog, match_mask

    cat = Catalog(icecat_products)
    cons = {"brand": "HP", "price_max": 300.0, "attributes": {"wi_fi": "no"}}
    mask = match_mask(cat, compile_filters(cons))
    expected = [satisfies(p, cons, lexicon) for p in icecat_products]
    assert mask.tolist() == expected and any(expected)
    assert describe(cons) == ["brand HP", "up to 300.00", "without Wi-Fi"]


def test_colour_reads_the_colour_attribute_then_the_title(lexicon, icecat_products):  # type: ignore[no-untyped-def]
    black = [p for p in icecat_products if satisfies(p, {"colour": "black"}, lexicon)]
    assert black
    for p in black:
        colours = [v for k, v in p.attributes.items() if "colour" in k and k != "colour"]
        text = " ".join(colours).lower() if colours else p.title.lower()
        assert "black" in text
    # "Black,Silver" is black; a product whose colour field says White is not, whatever its title
    white = [p for p in icecat_products if p.attributes.get("product_colour") == "White"]
    assert white and not any(satisfies(p, {"colour": "black"}, lexicon) for p in white)
