"""Complements, cart completion and bundles say only what the data backs (the
storefront issue: "Complements for an item with no events are the trending list in
disguise, with score 0 and the reason 'Goes well with <item>'. Bundles over all-zero
scores are called 'proven optimal'; a 3-item bundle where two items have no price
shows 'together 35.95'. Cart completion suggests a product with the same title as
one already in the cart.")

A tiny shop whose right answers are known: pens, a twin listing of the red pen under
another id, paper and tape bought with them, a stapler without a price, and a laptop
case nobody ever bought.
"""

from __future__ import annotations

import pytest

from shopsense.bundles import BundleService

PRODUCTS = [
    {"id": "pen", "title": "Red Gel Pen, Fine Point (12 pack)", "price": 6.0, "category": ["Pens"]},
    {"id": "pen-twin", "title": "Red Gel Pen, Fine Point (12-pack)", "price": 6.5, "category": ["Pens"]},
    {"id": "paper", "title": "Copy Paper, Letter, 500 sheets", "price": 9.0, "category": ["Paper"]},
    {"id": "tape", "title": "Clear Office Tape 3 rolls", "price": 4.0, "category": ["Tape"]},
    {"id": "stapler", "title": "Desktop Stapler 20 sheets", "price": None, "category": ["Staplers"]},
    {"id": "clips", "title": "Binder Clips Assorted", "price": None, "category": ["Clips"]},
    {"id": "case", "title": "Laptop Case 15 inch Black", "price": 30.0, "category": ["Cases"]},
    {"id": "mouse", "title": "Wireless Mouse", "price": 19.0, "category": ["Mice"]},
]
BASKETS = ([["pen", "paper"]] * 6 + [["pen", "pen-twin"]] * 6 + [["pen", "tape"]] * 4 + [["paper", "tape"]] * 3
           + [["pen", "stapler", "clips"]] * 5 + [["mouse"]] * 8)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):  # type: ignore[no-untyped-def]
    from shopsense import Engine

    eng = Engine(tmp_path_factory.mktemp("honest") / "home")
    eng.add_products(PRODUCTS)
    eng.add_events([{"user_id": f"u{b}", "item_id": i, "type": "purchase", "session_id": f"b{b}",
                     "timestamp": 1_400_000_000 + 60 * b} for b, basket in enumerate(BASKETS) for i in basket])
    eng._bundles = BundleService(eng, use_text=False)
    yield eng
    eng.close()


def test_complements_of_an_item_nobody_bought_are_empty_and_say_why(shop) -> None:  # type: ignore[no-untyped-def]
    res = shop.complements("case", k=5)
    assert res.ids == []  # not the popular list in disguise
    assert res.info["reason"] == "no purchase signal for these items yet"
    assert not any(h.reason.startswith("Goes well with") for h in res.hits)


def test_complements_and_cart_drop_the_same_product_under_another_id(shop) -> None:  # type: ignore[no-untyped-def]
    comp = shop.complements("pen", k=5)
    assert comp.ids and "pen-twin" not in comp.ids  # bought together six times, but it is the same pen
    assert all(h.score > 0 for h in comp.hits)
    cart = shop.complete_cart(["pen", "paper"], k=5)
    assert "pen-twin" not in cart.ids and not set(cart.ids) & {"pen", "paper"}
    assert "tape" in cart.ids


def test_bundle_of_an_item_nobody_bought_is_not_called_optimal(shop) -> None:  # type: ignore[no-untyped-def]
    res = shop.bundle(["case"], size=3)
    assert res.ids == [] and res.info["optimal"] is False
    assert res.info["reason"] == "no purchase signal for these items yet"


def test_bundle_total_is_unknown_when_an_item_has_no_price(shop) -> None:  # type: ignore[no-untyped-def]
    res = shop.bundle(["pen"], size=3, max_per_category=None)
    assert set(res.ids) & {"stapler", "clips"}, res.ids
    assert res.info["total_price"] is None  # never the sum of the priced items only
    assert set(res.info["price_unknown"]) == set(res.ids) & {"stapler", "clips"}
    assert res.info["known_price_total"] == pytest.approx(
        6.0 + sum(p["price"] for p in PRODUCTS if p["id"] in res.ids and p["price"] is not None))
    assert res.info["optimal"] is True and res.info["objective"] > 0


def test_bundle_on_a_budget_uses_priced_items_and_shows_what_is_left(shop) -> None:  # type: ignore[no-untyped-def]
    res = shop.bundle(["pen"], size=3, budget=25.0)
    assert res.ids and not set(res.ids) & {"stapler", "clips", "pen-twin"}
    total = 6.0 + sum(p["price"] for p in PRODUCTS if p["id"] in res.ids)
    assert res.info["total_price"] == pytest.approx(total) and total <= 25.0
    assert res.info["budget_left"] == pytest.approx(25.0 - total)
    assert res.info["price_unknown"] == []
