"""Lesson 8: the shopping assistant.

A small electronics shop from Open Icecat (the sample bundled in data/demo, Apache-2.0 /
Icecat content terms) and the demo shop's policy file. The assistant keeps the state of a
conversation, answers questions about products from the catalogue's own fields, quotes the
shop's policies, and cites the facts each answer rests on.

    python docs/lessons/08_assistant.py [--size 240] [--check]
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from _course import cli, heading, new_home

from shopsense import Engine, Product
from shopsense.assist import numbers_in, verify
from shopsense.datasets import demo_dir

CATEGORIES = ("notebook", "mouse", "inkjet printer", "toner cartridge")
TURNS = [
    "I need a notebook under 900",
    "only HP",
    "show me the second one",
    "how much is it?",
    "what is your return policy?",
    "where is my order? it never arrived",
]


def shop_sample(size: int) -> list[Product]:
    """Up to ``size`` products of a few categories, in file order."""
    per = max(1, size // len(CATEGORIES))
    left = dict.fromkeys(CATEGORIES, per)
    out = []
    for line in (demo_dir() / "icecat_products.jsonl").read_text(encoding="utf-8").splitlines():
        p = Product.model_validate(json.loads(line))
        cat = p.category[0] if p.category else ""
        if left.get(cat, 0) > 0:
            left[cat] -= 1
            out.append(p)
    return out


def main(size: int = 240) -> dict[str, Any]:
    heading("1. A shop: products, an index, a policy file")
    eng = Engine(new_home("lesson8"))
    eng.add_products(shop_sample(size))
    eng.paths.policies.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_dir() / "policies" / "shop_policies.md", eng.paths.policies)
    eng.build_index()
    print(f"{eng.stats()['products']} products; policies: {[p.name for p in eng.paths.policies.iterdir()]}")

    heading("2. A conversation")
    answers = []
    for text in TURNS:
        a = eng.ask("lesson-8", text)
        answers.append(a)
        print(f"\nshopper: {text}\nassistant [{a.intent}]: {a.text}")
        if a.products:
            print("  cards:", [f"{p.title[:40]} ({p.price})" for p in a.products[:3]])
        print("  state:", {k: v for k, v in a.state.items() if k in ("query", "constraints", "focus")})
        print("  cites:", [f"{f.kind}:{f.field or ''}={f.value[:30]}" for f in a.facts[:3]])
    eng.close()
    return {"answers": answers, "turns": TURNS}


# -- exercise -------------------------------------------------------------------------------
def exercise(reworded: str, answer: Any) -> set[str]:
    """YOUR TURN: a generative model may reword ``answer`` (set ``llm_url``) but must not invent
    a number. Return the numbers of ``reworded`` that appear neither in the grounded answer
    (``answer.grounded_text``) nor in a cited fact (``answer.facts``, each with a ``value``).
    ``shopsense.assist.numbers_in(text)`` gives every number of a text in one form (``1,299.00``
    and ``1299`` are the same). (The body below is one answer.)"""
    allowed = numbers_in(answer.grounded_text).union(*(numbers_in(f.value) for f in answer.facts))
    return numbers_in(reworded) - allowed


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """A faithful rewording passes, an invented price is caught (as the library's verifier does)."""
    result = result or main(120)
    fn = solution or exercise
    checked = 0
    for a in result["answers"]:
        if not a.facts:
            continue
        assert not fn(a.grounded_text, a), f"the grounded answer itself was flagged: {a.grounded_text!r}"
        invented = a.grounded_text + " Today only: 12.34 off!"
        assert "12.34" in fn(invented, a), f"the invented 12.34 was not caught in {invented!r}"
        assert verify(invented, a.grounded_text, a.facts), "the library's verifier should flag it too"
        checked += 1
    assert checked, "no answer cited facts"
    print(f"exercise: correct on {checked} answers: faithful text passes, an invented number is caught")


if __name__ == "__main__":
    cli(main, exercise_check, "products in the shop", 240)
