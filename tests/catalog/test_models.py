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
