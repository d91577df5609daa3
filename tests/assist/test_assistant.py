"""Conversations with the assistant on a small real shop: conversational search that
refines instead of starting over, product questions answered from the product's fields
(or declined), policies quoted from the shop's file, and every answer grounded."""

from __future__ import annotations

import pytest

from shopsense.assist import CatalogueLexicon, satisfies

from .conftest import check_grounded


def _lex(shop):  # type: ignore[no-untyped-def]
    return CatalogueLexicon.build(shop.catalog().products)


def test_refinements_keep_the_search_and_every_list_meets_every_constraint(assistant, shop):  # type: ignore[no-untyped-def]
    lex = _lex(shop)
    a = assistant.ask("s", "I need a toner cartridge")
    assert a.intent == "search" and a.products and a.state["query"] == "toner cartridge"
    assert a.understood["category"] == "toner cartridge"
    from collections import Counter

    brand = Counter(p.brand for p in shop.catalog().products if p.category == ["toner cartridge"]).most_common(1)[0][0]
    steps = [(f"only {brand}", {"brand": brand}), ("cheaper", None), ("in black", {"colour": "black"})]
    for text, expect in steps:
        before = dict(a.state["constraints"])
        a = assistant.ask("s", text)
        assert a.intent == "refine", (text, a.intent)
        assert a.state["query"] == "toner cartridge"  # refined, not started over
        cons = a.state["constraints"]
        assert set(before) <= set(cons)
        if expect:
            assert expect.items() <= cons.items()
        assert a.products, (text, a.text)
        assert all(satisfies(p, cons, lex) for p in a.products), (text, cons)
        assert all("toner" in p.title.lower() for p in a.products[:3])
        assert check_grounded(a, shop) == []
    # "cheaper" set a price limit below the middle of what was shown
    assert a.state["constraints"]["price_max"] > 0
    shown = a.state["shown"]
    sel = assistant.ask("s", "show me the second one")
    assert sel.intent == "select" and sel.products[0].id == shown[1] and sel.state["focus"] == shown[1]
    assert "price" in sel.text and check_grounded(sel, shop) == []
    cmp_ = assistant.ask("s", "compare the first two")
    assert cmp_.intent == "compare" and [p.id for p in cmp_.products] == shown[:2]
    assert cmp_.table and cmp_.table["ids"] == shown[:2] and cmp_.table["rows"][0][0] == "price"
    assert check_grounded(cmp_, shop) == []
    again = assistant.ask("s", "any brand")
    assert "brand" not in again.state["constraints"] and "colour" in again.state["constraints"]
    new = assistant.ask("s", "I need a notebook")
    assert new.intent == "search" and new.state["constraints"] == {} and new.state["query"] == "notebook"


def test_with_wifi_and_a_price_from_the_first_turn(assistant, shop):  # type: ignore[no-untyped-def]
    lex = _lex(shop)
    a = assistant.ask("w", "show me printers under 300 dollars")
    assert a.state["constraints"] == {"price_max": 300.0}
    assert a.products and all(p.price is not None and p.price <= 300 for p in a.products)
    b = assistant.ask("w", "without wifi")
    assert b.state["constraints"] == {"price_max": 300.0, "attributes": {"wi_fi": "no"}}
    assert b.products and all(satisfies(p, b.state["constraints"], lex) for p in b.products)
    assert "without Wi-Fi" in b.text


def test_nothing_matches_is_said_plainly(assistant):  # type: ignore[no-untyped-def]
    assistant.ask("n", "I need a notebook")
    a = assistant.ask("n", "under 1 dollar")
    assert not a.products and a.text.startswith("Nothing in the catalogue matches")
    assert "any price" in a.text


def _named(shop, attr):  # type: ignore[no-untyped-def]
    """A demo Icecat product with ``attr`` and a short model name."""
    for p in shop.catalog().products:
        m = p.attributes.get("model", "")
        if attr in p.attributes and 4 <= len(m) <= 20 and p.brand and not p.id.startswith("office"):
            return p
    raise AssertionError(attr)


def test_product_questions_quote_the_field(assistant, shop):  # type: ignore[no-untyped-def]
    p = _named(shop, "wi_fi")
    name = f"{p.brand} {p.attributes['model']}"
    a = assistant.ask("q", f"does the {name} have wifi?")
    assert a.intent == "product_question" and a.products[0].id == p.id
    assert a.text.startswith("Yes" if p.attributes["wi_fi"] == "yes" else "No")
    assert "“Wi-Fi”" in a.text and any(f.field == "attributes.wi_fi" for f in a.facts)
    b = assistant.ask("q", "how much is it?")  # "it" is the product just discussed
    assert b.products[0].id == p.id and f"{p.price:,.2f}" in b.text
    c = assistant.ask("q", "is it in stock?")
    assert c.text.startswith("Yes") and "in stock" in c.text
    d = assistant.ask("q", "what is the weight of it?")
    assert d.text.startswith("The catalogue doesn't list the weight") and d.understood["answered"] is False
    e = assistant.ask("q", f"who makes the {name}?")
    assert p.brand in e.text and e.understood["field"] == "brand"
    for ans in (a, b, c, d, e):
        assert check_grounded(ans, shop) == []


def test_questions_about_attributes_the_product_lacks_are_declined(assistant, shop):  # type: ignore[no-untyped-def]
    p = _named(shop, "processor_family")
    name = f"{p.brand} {p.attributes['model']}"
    a = assistant.ask("d", f"What is the processor family of the {name}?")
    assert p.attributes["processor_family"] in a.text and a.understood["answered"]
    toner = next(x for x in shop.catalog().products if x.category == ["toner cartridge"]
                 and "page_yield" not in x.attributes and "yield" not in (x.description + x.title).lower()
                 and 4 <= len(x.attributes.get("model", "")) <= 20)
    b = assistant.ask("d", f"what is the page yield of the {toner.brand} {toner.attributes['model']}?")
    assert b.products[0].id == toner.id
    if any("page_yield" in k for k in toner.attributes):  # a "black toner page yield" is an answer
        assert b.understood["answered"]
    else:
        assert b.text.startswith("The catalogue doesn't list the page yield") and not b.understood["answered"]
    c = assistant.ask("d", f"does the {toner.brand} {toner.attributes['model']} have bluetooth?")
    assert c.text.startswith("The catalogue doesn't say whether") and "bluetooth" in c.text.lower()
    for ans in (a, b, c):
        assert check_grounded(ans, shop) == []


def test_what_goes_with_it_uses_purchase_signal(assistant, shop):  # type: ignore[no-untyped-def]
    a = assistant.ask("c", "I need a stapler")
    assert a.products
    b = assistant.ask("c", "what goes with the first one?")
    assert b.intent == "complements" and b.state["focus"] == a.state["shown"][0]
    assert check_grounded(b, shop) == []
    if b.products:
        assert a.state["shown"][0] not in [p.id for p in b.products]
        assert b.state["shown"] == [p.id for p in b.products]
    else:
        assert "no data yet" in b.text


@pytest.mark.parametrize("question, heading", [
    ("what is your return policy?", "Returns and refunds"),
    ("how long does shipping take?", "Shipping and delivery"),
    ("can I pay with PayPal?", "Payment"),
    ("is there a warranty on electronics?", "Warranty"),
])
def test_policy_questions_quote_and_link_the_passage(assistant, shop, question, heading):  # type: ignore[no-untyped-def]
    a = assistant.ask("p", question)
    assert a.intent == "policy" and a.links and a.links[0]["title"] == heading
    assert a.links[0]["href"].startswith("/assistant/policies/shop_policies.md#")
    assert a.facts[0].kind == "policy" and a.facts[0].value in a.text
    assert check_grounded(a, shop) == []


def test_handoff_and_smalltalk(assistant):  # type: ignore[no-untyped-def]
    h = assistant.ask("h", "where is my order? it never arrived")
    assert h.intent == "handoff" and "person" in h.text and h.links[0]["title"] == "Contact customer service"
    assert assistant.ask("h", "hello").intent == "smalltalk"
    assert assistant.ask("h", "").intent == "smalltalk"


def test_input_is_checked(assistant):  # type: ignore[no-untyped-def]
    from shopsense.errors import ValidationError

    with pytest.raises(ValidationError, match="session_id"):
        assistant.ask("", "hi")
    with pytest.raises(ValidationError, match="text"):
        assistant.ask("x", "a" * 1001)
    with pytest.raises(ValidationError, match="user_id"):
        assistant.ask("x", "hi", user_id="")


def test_engine_ask_is_the_same_assistant(shop):  # type: ignore[no-untyped-def]
    a = shop.ask("engine-1", "I need a wireless mouse", user_id="erin")
    b = shop.ask("engine-1", "only Logitech")
    assert a.intent == "search" and b.intent in ("refine", "search")
    assert b.state["turns"] == 2
    assert shop.delete_user("erin")["assistant_sessions"] == 1
    assert shop.ask("engine-1", "cheaper").state["turns"] == 1  # the session was erased


@pytest.mark.parametrize("question, pid", [
    # two products share the model "MK710": the question's other words pick one
    ("is the Logitech MK710 keyboard RF Wireless AZERTY Belgian in stock?", "3941871"),
    ("how much is the Logitech MK710 keyboard RF Wireless QWERTY US International?", "3941870"),
    # a model made of words that starts another product's name is not taken for it
    ("how much is the HP Designjet 500 Plus 24-in Roll Printer?", "902138"),
    ("what is the price of the HP Designjet 500 Plus (42-inch) Printer?", "902167"),
])
def test_the_product_a_question_names(assistant, shop, question, pid):  # type: ignore[no-untyped-def]
    a = assistant.ask("name-" + pid, question)
    assert a.intent == "product_question" and a.understood["product"] == pid, (a.understood, a.text)
