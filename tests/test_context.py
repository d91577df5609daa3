"""Core helpers shared by the services (shopsense.context)."""

from __future__ import annotations

import pytest


def test_user_cache_drops_the_least_recently_used_and_says_so() -> None:
    from shopsense.context import UserCache

    out: list[tuple[str, int]] = []
    c: UserCache[str, int] = UserCache(2, on_evict=lambda k, v: out.append((k, v)))
    c["a"], c["b"] = 1, 2
    assert c.get("a") == 1  # a is now the most recent
    c["c"] = 3
    assert out == [("b", 2)] and "b" not in c and len(c) == 2
    assert c.pop("a") == 1 and out == [("b", 2)]  # a pop is not an eviction
    assert c.get("zz", "none") == "none"
    with pytest.raises(KeyError):
        c["zz"]
    with pytest.raises(ValueError, match="size"):
        UserCache(0)
