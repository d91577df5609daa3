"""Intent routing without a language model, on real shopper queries and on the turns
of a conversation."""

from __future__ import annotations

import pytest

from shopsense.assist import DialogueState, ordinals, route


def _state(**kw):  # type: ignore[no-untyped-def]
    return DialogueState(query=kw.get("query", "printer"), shown=kw.get("shown", ["a", "b", "c"]),
                         focus=kw.get("focus"))


@pytest.mark.integration
def test_real_home_depot_queries_route_to_search(lexicon, datasets_root):  # type: ignore[no-untyped-def]
    from shopsense.datasets import load_homedepot_judgments

    queries = load_homedepot_judgments().queries()
    intents = [route(q, DialogueState(), lexicon).intent for q in queries]
    share = intents.count("search") / len(queries)
    assert len(queries) > 8000
    assert share >= 0.995, [(q, i) for q, i in zip(queries, intents) if i != "search"][:20]
    # the few that do not are requests to the shop, not product queries
    others = {q for q, i in zip(queries, intents) if i != "search"}
    assert others <= {"free shipping", "do you get free shipping", "customer service phone number"}


@pytest.mark.integration
def test_real_crowdflower_queries_route_to_search(lexicon, datasets_root):  # type: ignore[no-untyped-def]
    import csv

    with open(datasets_root / "search" / "crowdflower" / "train.csv", newline="", encoding="utf-8") as f:
        queries = sorted({row["query"] for row in csv.DictReader(f)})
    intents = [route(q, DialogueState(), lexicon).intent for q in queries]
    assert len(queries) > 200
    assert intents.count("search") / len(queries) >= 0.99


@pytest.mark.parametrize("text, intent", [
    ("I need a printer for a small office", "search"),
    ("do you have wireless mice?", "search"),
    ("hello", "smalltalk"),
    ("thanks!", "smalltalk"),
    ("what can you do?", "smalltalk"),
    ("I want to talk to a human", "handoff"),
    ("where is my order?", "handoff"),
    ("my parcel arrived damaged", "handoff"),
    ("I can't log in to my account", "handoff"),
    ("what is your return policy?", "policy"),
    ("how long does shipping take?", "policy"),
    ("can I pay with PayPal?", "policy"),
    ("do you ship to Canada?", "policy"),
    ("how do I return an item?", "policy"),
    ("start over", "reset"),
])
def test_intents_without_state(lexicon, text, intent):  # type: ignore[no-untyped-def]
    assert route(text, DialogueState(), lexicon).intent == intent


@pytest.mark.parametrize("text, intent", [
    ("cheaper", "refine"),
    ("only HP", "refine"),
    ("in black", "refine"),
    ("with wifi", "refine"),
    ("under 200 dollars", "refine"),
    ("make it 18 volt", "refine"),
    ("show me the second one", "select"),
    ("the third one", "select"),
    ("what goes with it?", "complements"),
    ("any accessories for the second one?", "complements"),
    ("I need a rack accessory", "search"),  # a category, not "what goes with it"
    ("compare the first two", "compare"),
    ("what's the difference between the first and the second?", "compare"),
    ("is it in stock?", "product_question"),
    ("does the second one have wifi?", "product_question"),
    ("how much is the first one?", "product_question"),
    ("I need a laptop", "search"),
    ("what is your warranty?", "policy"),
])
def test_intents_in_a_conversation(lexicon, text, intent):  # type: ignore[no-untyped-def]
    assert route(text, _state(), lexicon, asks_field=any(
        w in text for w in ("stock", "wifi", "much", "weight"))).intent == intent


def test_a_refinement_that_names_a_model_is_still_a_refinement(lexicon):  # type: ignore[no-untyped-def]
    # "Numeric Keypad" is a Targus model and a keyboard attribute
    r = route("with numeric keypad", _state(), lexicon, names_product=True, asks_field=True)
    assert r.intent == "refine"


def test_a_named_product_question_is_a_product_question(lexicon):  # type: ignore[no-untyped-def]
    r = route("does the HP Officejet K550 have wifi?", DialogueState(), lexicon, names_product=True,
              asks_field=True)
    assert r.intent == "product_question"
    # a policy word about a named product's own field stays a product question
    r = route("what is the warranty of the HP Officejet K550?", DialogueState(), lexicon, names_product=True,
              asks_field=True)
    assert r.intent == "product_question"


@pytest.mark.parametrize("text, positions", [
    ("show me the second one", [2]), ("the 3rd", [3]), ("compare the first two", [1, 2]),
    ("compare the first three", [1, 2, 3]), ("compare 1 and 3", [1, 3]), ("number 4 please", [4]),
    ("#2", [2]), ("the last one", [-1]), ("compare them", [1, 2]), ("cheaper", []),
])
def test_ordinals(text, positions):  # type: ignore[no-untyped-def]
    assert ordinals(text) == positions
