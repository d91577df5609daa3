from datetime import UTC

import pydantic
import pytest

from shopsense import Event, Product


def test_product_parses_shop_shapes():
    p = Product.model_validate(
        {"id": 100001, "title": " Drill ", "category": "Tools > Power Tools > Drills",
         "attributes": {"colour": "red", "watts": 500, "empty": ""}, "price": "49.90",
         "in_stock": "no"}
    )
    assert p.id == "100001" and p.title == "Drill"
    assert p.category == ["Tools", "Power Tools", "Drills"]
    assert p.attributes == {"colour": "red", "watts": "500"}
    assert p.price == pytest.approx(49.9) and p.in_stock is False
    assert p.created_at.tzinfo is not None
    assert "Power Tools" in p.text()


@pytest.mark.parametrize(
    "row, field",
    [
        ({"title": "x"}, "id"),
        ({"id": "1"}, "title"),
        ({"id": "1", "title": "x", "price": -1}, "price"),
        ({"id": "1", "title": "x", "price": "abc"}, "price"),
        ({"id": "1", "title": "x", "rating": 7}, "rating"),
        ({"id": "1", "title": "x", "bogus": 1}, "bogus"),
    ],
)
def test_product_rejects_name_the_field(row, field):
    with pytest.raises(pydantic.ValidationError) as exc:
        Product.model_validate(row)
    assert exc.value.errors()[0]["loc"][0] == field


def test_event_timestamps_and_types():
    e = Event.model_validate({"user_id": 7, "item_id": 3.0, "type": "purchase", "timestamp": "1400000000"})
    assert e.user_id == "7" and e.item_id == "3"
    assert e.timestamp.tzinfo == UTC and e.timestamp.year == 2014
    s = Event.model_validate({"user_id": "u", "type": "search", "query": "red sofa"})
    assert s.item_id is None
    with pytest.raises(pydantic.ValidationError):
        Event.model_validate({"user_id": "u", "item_id": "1", "type": "like"})
    with pytest.raises(pydantic.ValidationError):
        Event.model_validate({"user_id": "u", "item_id": "1", "type": "view", "timestamp": "yesterday"})
    with pytest.raises(pydantic.ValidationError, match="item_id is required"):
        Event.model_validate({"user_id": "u", "type": "view"})


@pytest.mark.parametrize("user_id", ["a/b", "/", ".", "..", "a\x00b", "tab\there", "\x7f"])
def test_user_ids_that_cannot_round_trip_through_a_url_are_refused(user_id):
    """Hostile-input issue, family 4: such ids were accepted by POST /events and ingest, but
    GET/DELETE /users/{user_id} could never reach them. Refused, naming field and rule."""
    with pytest.raises(pydantic.ValidationError) as exc:
        Event.model_validate({"user_id": user_id, "item_id": "1", "type": "view"})
    err = exc.value.errors()[0]
    assert err["loc"] == ("user_id",) and "URL" in err["msg"]


@pytest.mark.parametrize("user_id", ["a.b", "...", "a b", "ü", "a%2Fb", "a?b#c", "x" * 256])
def test_user_ids_that_round_trip_are_kept(user_id):
    assert Event.model_validate({"user_id": user_id, "item_id": "1", "type": "view"}).user_id == user_id


def test_item_and_product_ids_refuse_dots_and_control_characters_but_keep_slashes():
    """Product ids with '/' exist in real catalogues (groceries: 'rolls/buns'): kept."""
    assert Product.model_validate({"id": "rolls/buns", "title": "x"}).id == "rolls/buns"
    assert Event.model_validate({"user_id": "u", "item_id": "rolls/buns", "type": "view"}).item_id == "rolls/buns"
    for bad in (".", "..", "a\nb"):
        with pytest.raises(pydantic.ValidationError, match="id"):
            Product.model_validate({"id": bad, "title": "x"})
        with pytest.raises(pydantic.ValidationError, match="item_id"):
            Event.model_validate({"user_id": "u", "item_id": bad, "type": "view"})
