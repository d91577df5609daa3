from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shopsense.catalog import Catalog, Product
from shopsense.errors import ValidationError
from shopsense.rerank import Rule, RuleSet, apply, load_rules, save_rules, validate_rules
from shopsense.results import Hit


@pytest.fixture()
def cat() -> Catalog:
    return Catalog([
        Product(id=f"p{i}", title=f"Product {i}", brand="Acme" if i % 3 == 0 else "Other",
                category=["Home", "Sofas" if i % 2 else "Chairs"], attributes={"color": "red" if i < 4 else "blue"},
                price=10.0 * i, in_stock=i != 5)
        for i in range(12)
    ])


def _hits(n: int = 10) -> list[Hit]:
    return [Hit(f"p{i}", float(n - i), "bm25", evidence={"matched_terms": ["sofa"]}) for i in range(n)]


def test_exclude_hide_boost_bury_pin(cat: Catalog) -> None:
    rs = validate_rules({"hide_out_of_stock": True, "rules": [
        {"name": "no-red", "action": "exclude", "match": {"attributes": {"color": "RED"}}},
        {"name": "acme-up", "action": "boost", "weight": 0.5, "match": {"brand": "acme"}},
        {"name": "cheap-down", "action": "bury", "weight": 0.9, "match": {"price_max": 45}},
        {"name": "hero", "action": "pin", "position": 1, "match": {"ids": ["p11"]}},
    ]})
    hits = _hits()
    out, rep = apply(hits, cat, rules=rs)
    ids = [h.id for h in out]
    assert ids[0] == "p11" and "p11" in rep.inserted and out[0].source == "pinned" and out[0].reason
    assert not {"p0", "p1", "p2", "p3"} & set(ids) and rep.removed["p0"] == "rule 'no-red'"
    assert "p5" not in ids and rep.removed["p5"] == "out of stock"
    assert ids.index("p6") < ids.index("p4")  # Acme boosted above a better-scored item
    assert rep.rules_applied["acme-up"] == ["p6", "p9"]
    assert out[ids.index("p6")].sources["rules"] > 0
    assert [h.id for h in hits] == [f"p{i}" for i in range(10)] and all(h.reason == "" for h in hits)
    assert all(h.reason for h in out)


def test_category_and_price_range_match(cat: Catalog) -> None:
    rs = RuleSet(rules=[Rule.model_validate({"name": "x", "action": "exclude",
                                             "match": {"category": "sofas", "price_min": 30, "price_max": 70}})])
    _out, rep = apply(_hits(), cat, rules=rs)
    assert set(rep.removed) == {"p3", "p5", "p7"}


def test_rules_scoped_to_surface_and_query(cat: Catalog) -> None:
    rs = RuleSet(rules=[Rule(name="q", action="pin", position=1, match={"ids": ["p9"]},
                             surfaces=["search"], queries=["Sofa"])])
    assert apply(_hits(), cat, rules=rs, context={"surface": "search", "query": "sofa "})[0][0].id == "p9"
    assert apply(_hits(), cat, rules=rs, context={"surface": "search", "query": "chair"})[0][0].id == "p0"
    assert apply(_hits(), cat, rules=rs, context={"surface": "recommend", "query": "sofa"})[0][0].id == "p0"


@pytest.mark.parametrize("doc, field", [
    ({"rules": [{"name": "a", "action": "promote", "match": {"brand": "x"}}]}, "rules.rules.0.action"),
    ({"rules": [{"name": "a", "action": "pin", "match": {"brand": "x"}}]}, "rules.rules.0"),
    ({"rules": [{"name": "a", "action": "boost", "match": {}}]}, "rules.rules.0.match"),
    ({"rules": [{"name": "a", "action": "boost", "weight": -1, "match": {"brand": "x"}}]}, "rules.rules.0.weight"),
    ({"rules": [{"name": "a", "action": "exclude", "match": {"price_min": 9, "price_max": 1}}]},
     "rules.rules.0.match"),
    ({"rules": [{"name": "a", "action": "exclude", "match": {"colour": "x"}}]}, "rules.rules.0.match.colour"),
    ({"hide_out_of_stock": True, "rule": []}, "rules.rule"),
])
def test_validation_errors_name_the_field(doc, field) -> None:
    with pytest.raises(ValidationError) as ei:
        validate_rules(doc)
    assert ei.value.field == field
    assert field in str(ei.value)


def test_duplicate_names_and_save_load(tmp_path) -> None:
    rs = RuleSet().add({"name": "a", "action": "bury", "match": {"brand": "x"}})
    with pytest.raises(ValidationError, match="already exists"):
        rs.add({"name": "a", "action": "boost", "match": {"brand": "y"}})
    save_rules(tmp_path, rs)
    assert load_rules(tmp_path) == rs
    assert load_rules(tmp_path / "nowhere") == RuleSet()
    (tmp_path / "rules.json").write_text("{bad json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_rules(tmp_path)


def test_cli_add_list_remove(tmp_path) -> None:
    from shopsense.cli import app

    home = str(tmp_path / "home")
    r = CliRunner()
    res = r.invoke(app, ["rules", "add", "acme", "--action", "boost", "--brand", "Acme", "--weight", "0.4",
                         "--home", home])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["rules", "add", "hero", "--action", "pin", "--id", "p1", "--position", "2",
                         "--surface", "search", "--home", home])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["rules", "out-of-stock", "--hide", "--home", home])
    assert res.exit_code == 0
    doc = json.loads((tmp_path / "home" / "rules.json").read_text())
    assert doc["hide_out_of_stock"] and [x["name"] for x in doc["rules"]] == ["acme", "hero"]
    res = r.invoke(app, ["rules", "list", "--home", home])
    assert "acme" in res.output and "brand=Acme" in res.output and "position 2" in res.output
    bad = r.invoke(app, ["rules", "add", "x", "--action", "pin", "--brand", "b", "--home", home])
    assert bad.exit_code == 2 and "position" in bad.output
    bad = r.invoke(app, ["rules", "add", "y", "--action", "boost", "--home", home])
    assert bad.exit_code == 2 and "match" in bad.output
    assert r.invoke(app, ["rules", "remove", "acme", "--home", home]).exit_code == 0
    assert [x.name for x in load_rules(tmp_path / "home").rules] == ["hero"]
    assert r.invoke(app, ["rules", "remove", "nope", "--home", home]).exit_code == 2
    assert r.invoke(app, ["rules", "check", "--home", home]).exit_code == 0
