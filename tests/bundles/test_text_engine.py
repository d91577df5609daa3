"""The full path with the sentence encoder: Groceries through the Engine (slow: loads the model)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_groceries_engine_with_text(groceries, tmp_path):
    from shopsense import Engine

    eng = Engine(tmp_path / "home")
    eng.add_products([{"id": x, "title": x, "category": [l1, l2], "price": 1.0 + (i % 7)}
                      for i, (x, l1, l2) in enumerate(zip(groceries["ids"], groceries["level1"],
                                                          groceries["level2"]))])
    eng.add_events([{"user_id": f"u{b % 50}", "item_id": groceries["ids"][j], "type": "purchase",
                     "session_id": f"b{b}", "timestamp": 1_400_000_000 + b}
                    for b, basket in enumerate(groceries["baskets"][:3000]) for j in basket])
    res = eng.complete_cart(["whole milk", "rolls/buns"], k=10)
    assert len(res) == 10 and not {"whole milk", "rolls/buns"} & set(res.ids)
    subs = eng.bundler.substitutes("whole milk", k=5)
    cat = eng.catalog()
    assert all(cat.category_leaf[cat.index[h.id]] == "dairy produce" for h in subs.hits)
    assert not set(subs.ids) & set(eng.complements("whole milk", k=10).ids)
    b = eng.bundle("whole milk", size=4, budget=12.0)
    assert sum(eng.product(i).price for i in b.ids) + eng.product("whole milk").price <= 12.0
    eng.close()
