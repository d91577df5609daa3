"""Issue 14: the CLI, the Python engine and the HTTP API give the same lists.

All three go through ``Engine`` and its one finishing stage, so for one home and
one rules file, complements, cart completion and bundles must agree item for item
and reason for reason (the CLI used to call the bundle service directly and
skipped the rules).
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shopsense.cli import app
from shopsense.engine import Engine
from shopsense.rerank import Rule, RuleSet, save_rules

from .conftest import needs


def _cli_json(*args: str) -> dict:
    out = CliRunner().invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def _pairs(hits: list[dict]) -> list[tuple[str, str]]:
    return [(h["id"], h["reason"]) for h in hits]


@needs("bundles")
def test_cli_python_and_http_agree_on_complements_cart_and_bundle(home, make_client) -> None:  # type: ignore[no-untyped-def]
    with Engine(home) as eng:
        item = max(eng.catalog().ids[:60], key=lambda p: len(eng.complements(p, k=10)))
        base = eng.complements(item, k=10)
        assert len(base) >= 4, "the slice needs an item with complements"
        # rules that act on every surface checked here: drop the first complement, pin the fourth
        # to the top; the CLI used to skip them
        drop, pin = base.ids[0], base.ids[3]
        save_rules(home, RuleSet(rules=[
            Rule(name="no-first", action="exclude", match={"ids": [drop]}, surfaces=["complements", "cart"]),
            Rule(name="pin-fourth", action="pin", position=1, match={"ids": [pin]},
                 surfaces=["complements", "cart"])]))
        py_comp = eng.complements(item, k=5)
        py_cart = eng.complete_cart([item], k=5)
        py_bundle = eng.bundle([item], size=3)
    assert drop not in py_comp.ids and py_comp.ids[0] == pin
    assert py_comp.info["rerank"]["rules_applied"]["pin-fourth"] == [pin]
    assert all(h.reason and h.product is not None for h in py_comp.hits + py_cart.hits + py_bundle.hits)

    cli_comp = _cli_json("complements", item, "-k", "5", "--home", str(home))
    cli_cart = _cli_json("complete-cart", item, "-k", "5", "--home", str(home))
    cli_bundle = _cli_json("bundle", item, "--size", "3", "--home", str(home))

    with make_client(home, warm=False) as client:
        http_comp = client.get(f"/items/{item}/complements", params={"k": 5}).json()
        http_cart = client.post("/carts/complete", json={"items": [item], "k": 5}).json()
        http_bundle = client.post("/bundles", json={"items": [item], "size": 3}).json()

    py = {"complements": py_comp, "cart": py_cart, "bundle": py_bundle}
    for surface, cli, http in (("complements", cli_comp, http_comp), ("cart", cli_cart, http_cart),
                               ("bundle", cli_bundle, http_bundle)):
        expected = [(h.id, h.reason) for h in py[surface].hits]
        assert expected, surface
        assert _pairs(cli["hits"]) == expected, f"CLI differs from Python on {surface}"
        assert _pairs(http["hits"]) == expected, f"HTTP differs from Python on {surface}"
    assert cli_comp["rerank"]["rules_applied"] == http_comp["rerank"]["rules_applied"] \
        == {"no-first": [drop], "pin-fourth": [pin]}


@needs("bundles")
def test_substitutes_go_through_the_engine(home) -> None:  # type: ignore[no-untyped-def]
    with Engine(home) as eng:
        item = eng.catalog().ids[0]
        py = eng.substitutes(item, k=5)
    assert all(h.reason and h.product is not None for h in py.hits)
    cli = _cli_json("substitutes", item, "-k", "5", "--home", str(home))
    assert _pairs(cli["hits"]) == [(h.id, h.reason) for h in py.hits]
