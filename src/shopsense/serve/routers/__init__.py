"""One router per resource; ``serve.main`` includes them all."""

from __future__ import annotations

from shopsense.serve.routers import (
    bundles,
    carts,
    events,
    items,
    products,
    search,
    system,
    ui,
    users,
)

__all__ = ["bundles", "carts", "events", "items", "products", "search", "system", "ui", "users"]
