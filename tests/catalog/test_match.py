"""The one product matcher (catalog.match_mask) and its two callers: search filters
(search.filter_mask) and merchandising rules (rerank Match.mask)."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from shopsense.catalog import Catalog, Product, match_mask
from shopsense.errors import ValidationError
from shopsense.rerank import Match
from shopsense.search import filter_mask

OFFICE = Path(__file__).resolve().parents[2] / "data" / "demo" / "office_products.jsonl"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog([
        Product(id="p0", title="Laser printer", brand="HP", category=["Office", "Printers", "Laser"],
                attributes={"color": "Black"}, price=199.0),
        Product(id="p1", title="Ink", brand="hp", category=["Office", "Ink & Toner"],
                attributes={"Color": "CYAN"}, price=25.0, in_stock=False),
        Product(id="p2", title="Scanner", brand="Hp", category=["Office", "Scanners"], price=None),
        Product(id="p3", title="Camera", brand="Canon", category=["Photo", "Cameras"],
                attributes={"color": "black"}, price=499.99, rating=4.5),
        Product(id="p4", title="Street sign", brand="Schilder", category=["STRASSE"], price=10.0),
        Product(id="p5", title="Road map", brand="Straße Verlag", category=["Maps", "straße"], price=0.0),
        Product(id="SKU-1", title="Pens", brand="", category=[], price=3.0, rating=2.0),
        Product(id="sku-1", title="Pencils", brand="Staedtler", category=["Office", "Pens"]),
    ])


def _ids(cat: Catalog, mask: np.ndarray) -> set[str]:
    return {cat.ids[i] for i in np.flatnonzero(mask)}


def test_strings_are_case_folded_and_stripped(cat: Catalog) -> None:
    hp = {"p0", "p1", "p2"}
    for spelling in ("HP", "hp", "Hp", " hP "):
        assert _ids(cat, match_mask(cat, {"brand": spelling})) == hp
    # casefold, not lower: German sharp s equals "SS"
    assert "STRASSE".lower() != "straße".lower()
    assert _ids(cat, match_mask(cat, {"category": "straße"})) == {"p4", "p5"}
    assert _ids(cat, match_mask(cat, {"category": "STRASSE"})) == {"p4", "p5"}
    assert _ids(cat, match_mask(cat, {"brand": "STRASSE verlag"})) == {"p5"}
    # attribute names and values alike
    assert _ids(cat, match_mask(cat, {"color": "BLACK"})) == {"p0", "p3"}
    assert _ids(cat, match_mask(cat, {"attributes": {"COLOR": "cyan "}})) == {"p1"}
    # ids are keys: stripped but exact, "SKU-1" and "sku-1" are two products
    assert _ids(cat, match_mask(cat, {"ids": " SKU-1"})) == {"SKU-1"}


def test_category_matches_any_level_of_the_path(cat: Catalog) -> None:
    assert _ids(cat, match_mask(cat, {"category": "office"})) == {"p0", "p1", "p2", "sku-1"}
    assert _ids(cat, match_mask(cat, {"category": "Printers"})) == {"p0"}
    assert _ids(cat, match_mask(cat, {"category": "laser"})) == {"p0"}
    assert _ids(cat, match_mask(cat, {"category": "Ink"})) == set()  # whole level names only


def test_price_range_is_inclusive_and_unknown_price_never_matches(cat: Catalog) -> None:
    known = {"p0", "p1", "p3", "p4", "p5", "SKU-1"}
    assert _ids(cat, match_mask(cat, {"price_min": 0})) == known
    assert _ids(cat, match_mask(cat, {"price": {"max": 1e12}})) == known
    assert _ids(cat, match_mask(cat, {"price": {"min": 25, "max": 199}})) == {"p0", "p1"}
    assert _ids(cat, match_mask(cat, {"price_min": 25, "price_max": 199})) == {"p0", "p1"}
    assert _ids(cat, match_mask(cat, {"price_max": 0})) == {"p5"}
    assert _ids(cat, match_mask(cat, {"price": {}})) == known  # no bound, but a price is needed
    m = Match(price_max=10_000)
    assert _ids(cat, m.mask(cat, np.arange(len(cat)))) == known


def test_list_means_any_of(cat: Catalog) -> None:
    assert _ids(cat, match_mask(cat, {"brand": ["canon", "HP"]})) == {"p0", "p1", "p2", "p3"}
    assert _ids(cat, match_mask(cat, {"category": ("Cameras", "scanners")})) == {"p2", "p3"}
    assert _ids(cat, match_mask(cat, {"ids": ["p1", "p3", "nope"]})) == {"p1", "p3"}
    assert _ids(cat, match_mask(cat, {"attributes": {"color": ["cyan", "black"]}})) == {"p0", "p1", "p3"}
    assert _ids(cat, match_mask(cat, {"brand": []})) == set()


def test_stock_rating_none_and_and(cat: Catalog) -> None:
    everything = set(cat.ids)
    assert _ids(cat, match_mask(cat, {})) == everything
    assert _ids(cat, match_mask(cat, {"brand": None, "in_stock": False})) == everything
    assert _ids(cat, match_mask(cat, {"in_stock": True})) == everything - {"p1"}
    assert _ids(cat, match_mask(cat, {"in_stock": "true"})) == everything - {"p1"}
    assert _ids(cat, match_mask(cat, {"rating_min": 2})) == {"p3", "SKU-1"}
    assert _ids(cat, match_mask(cat, {"brand": "hp", "in_stock": True, "price_max": 100})) == set()
    assert filter_mask(cat, {}) is None and filter_mask(cat, None) is None


def test_rows_limit_the_work_and_align_the_mask(cat: Catalog) -> None:
    rows = np.array([3, 0, 3, 5])
    np.testing.assert_array_equal(match_mask(cat, {"color": "black"}, rows=rows), [True, True, True, False])
    np.testing.assert_array_equal(match_mask(cat, {"ids": ["p5"]}, rows=rows), [False, False, False, True])


@pytest.mark.parametrize("filters", [
    {"brand": "hp"},
    {"brand": "  CANON"},
    {"category": "straße"},
    {"category": "office", "brand": "HP"},
    {"attributes": {"color": "BLACK"}},
    {"attributes": {"Color": "cyan"}},
    {"price_min": 25, "price_max": 199},
    {"price_max": 10},
    {"ids": ["p2", "sku-1"]},
    {"ids": ["p0", "p3"], "attributes": {"color": "black"}, "price_min": 200},
])
def test_search_filters_and_rule_matches_agree(cat: Catalog, filters: dict) -> None:
    idx = np.array([-1, *range(len(cat)), -1, 2])
    rule = Match(**filters).mask(cat, idx)
    search = filter_mask(cat, filters)
    assert search is not None
    np.testing.assert_array_equal(rule, np.where(idx >= 0, search[np.maximum(idx, 0)], False))
    np.testing.assert_array_equal(search, match_mask(cat, Match(**filters).as_filters()))


def test_agreement_on_real_office_rows() -> None:
    rows = [json.loads(line) for line in islice(OFFICE.open(), 300) if line.strip()]
    cat = Catalog([Product.model_validate(r) for r in rows])
    brand = next(b for b in cat.brand if b.upper() != b.lower())  # has letters
    leaf = cat.category_leaf[0]
    idx = np.arange(len(cat))
    for filters in ({"brand": brand.upper()}, {"brand": brand.lower()}, {"category": f" {leaf.upper()} "},
                    {"category": cat.category_root[0].lower(), "brand": brand}):
        search = filter_mask(cat, filters)
        np.testing.assert_array_equal(Match(**filters).mask(cat, idx), search)
    want = {i for i, b in enumerate(cat.brand) if b.casefold() == brand.casefold()}
    assert set(np.flatnonzero(filter_mask(cat, {"brand": brand.swapcase()}))) == want and want


def test_bad_filters_name_the_field_and_what_is_allowed(cat: Catalog) -> None:
    with pytest.raises(ValidationError, match="Unknown filter 'colour'") as ei:
        match_mask(cat, {"colour": "red"})
    assert ei.value.field == "colour"
    for allowed in ("category", "brand", "price_min", "in_stock", "attributes", "color"):
        assert allowed in str(ei.value)
    with pytest.raises(ValidationError, match="'price'.*'min' and/or 'max'") as ei:
        match_mask(cat, {"price": {"low": 5}})
    assert ei.value.field == "price"
    with pytest.raises(ValidationError, match="'price_max' filter must be a number") as ei:
        match_mask(cat, {"price_max": "cheap"})
    assert ei.value.field == "price_max"
    with pytest.raises(ValidationError, match="'in_stock' filter must be true or false"):
        match_mask(cat, {"in_stock": "maybe"})
    with pytest.raises(ValidationError, match="'brand' filter must be a string or a list"):
        match_mask(cat, {"brand": {"name": "hp"}})
    with pytest.raises(ValidationError, match="'attributes' filter must be a mapping"):
        filter_mask(cat, {"attributes": "red"})
