"""The optional generative back-end: it may only reword; the verifier catches invented
prices, colours, brands, ids and flipped answers and falls back to the grounded answer.
Tested against a local fake OpenAI-compatible endpoint."""

from __future__ import annotations

import pytest

from shopsense.assist import Assistant, Fact, OpenAIGenerator, SessionStore, numbers_in, verify

from .conftest import check_grounded
from .fake_llm import FakeLLM

GROUNDED = "HP Officejet K550 costs 199.95 USD (catalogue field “price”)."
FACTS = [Fact("product", "HP Officejet K550 inkjet printer", "123", "title"),
         Fact("field", "199.95", "123", "price", "price")]


def test_numbers_are_compared_in_one_form():
    assert numbers_in("1,299.00 USD and 49,95 EUR") >= {"1299", "49.95"}
    assert numbers_in("199.95") == numbers_in("costs 199.950")


@pytest.mark.parametrize("text, ok", [
    ("Good news: the HP Officejet K550 is 199.95 USD.", True),
    ("The HP Officejet K550 is 189.95 USD.", False),  # another price
    ("The HP Officejet K550 is 199.95 USD, and product 456 is cheaper.", False),  # another id
    ("The HP Officejet K550 costs 199.95 USD and it is black.", False),  # a colour nobody stated
    ("The HP Officejet K550 costs 199.95 USD, less than the Canon one.", False),  # another brand
    ("The HP Officejet K550 doesn't cost 199.95 USD.", False),  # a negation that was not there
    ("", False),
])
def test_verify(text, ok):  # type: ignore[no-untyped-def]
    problems = verify(text, GROUNDED, FACTS, brands=["HP", "Canon"], is_product_id=lambda t: t in {"123", "456"})
    assert (problems == []) is ok, problems


def test_attribute_values_of_the_cited_product_must_be_cited(icecat_products):  # type: ignore[no-untyped-def]
    p = next(x for x in icecat_products if x.attributes.get("print_technology"))
    grounded = f"{p.title} costs {p.price:.2f} {p.currency}."
    facts = [Fact("field", f"{p.price:.2f}", p.id, "price", "price")]
    lie = grounded + f" It uses {p.attributes['print_technology']}."
    assert verify(lie, grounded, facts, products={p.id: p})
    assert verify("Sure! " + grounded, grounded, facts, products={p.id: p}) == []


def test_generator_reads_the_settings():
    from shopsense.config import Settings

    assert OpenAIGenerator.from_settings(Settings(home="x")) is None
    g = OpenAIGenerator.from_settings(Settings(home="x", llm_url="http://127.0.0.1:1/v1", llm_model="m",
                                               llm_api_key="k"))
    assert g is not None and g._endpoint().endswith("/v1/chat/completions") and g.api_key == "k"


CONVERSATION = ["I need a toner cartridge", "only HP", "what is the price of the first one?",
                "does the second one have wifi?", "compare the first two", "how long does shipping take?",
                "is it in stock?", "show me the third one"]


def _talk(shop, tmp_path, mode):  # type: ignore[no-untyped-def]
    with FakeLLM(mode) as llm:
        a = Assistant(shop, sessions=SessionStore(tmp_path / f"{mode}.sqlite3"),
                      generator=OpenAIGenerator(llm.url, timeout=10))
        answers = [a.ask(f"gen-{mode}", t) for t in CONVERSATION]
        a.sessions.close()
    return answers, llm.calls


def test_a_faithful_rewording_is_used(shop, tmp_path):  # type: ignore[no-untyped-def]
    answers, calls = _talk(shop, tmp_path, "faithful")
    assert calls == len(CONVERSATION)
    for ans in answers:
        assert ans.generated and ans.text.startswith("Sure! ") and ans.verifier == [], ans.verifier
        assert ans.text == "Sure! " + ans.grounded_text
        assert check_grounded(ans, shop) == []


def test_invented_facts_are_caught_and_the_grounded_answer_is_kept(shop, tmp_path):  # type: ignore[no-untyped-def]
    answers, calls = _talk(shop, tmp_path, "lying")
    assert calls == len(CONVERSATION)
    lied = [a for i, a in enumerate(answers) if i % 2 == 1]
    for ans in lied:
        assert not ans.generated and ans.text == ans.grounded_text and ans.verifier, ans.text
    assert any("9.99" in p for a in lied for p in a.verifier)  # the invented price, by name
    for ans in answers:
        assert "9.99 USD" not in ans.text and "turquoise" not in ans.text
        assert check_grounded(ans, shop) == []


def test_an_unreachable_or_failing_endpoint_never_breaks_a_turn(shop, tmp_path):  # type: ignore[no-untyped-def]
    answers, _ = _talk(shop, tmp_path, "error")
    assert all(not a.generated and a.verifier and a.text == a.grounded_text for a in answers)
    a = Assistant(shop, sessions=SessionStore(tmp_path / "x.sqlite3"),
                  generator=OpenAIGenerator("http://127.0.0.1:9/v1", timeout=0.5))
    ans = a.ask("down", "I need a mouse")
    assert not ans.generated and ans.products
