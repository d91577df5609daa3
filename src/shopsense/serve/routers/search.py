"""``GET /search``: hybrid product search with filters as query parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from shopsense.serve._results import ResultsOut
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader

router = APIRouter(tags=["search"])


def filters_from(category: str | None, brand: str | None, price_min: float | None,
                 price_max: float | None, in_stock: bool | None, rating_min: float | None,
                 attr: list[str] | None) -> dict[str, Any]:
    """Query parameters -> the engine's filter dict (only the ones given)."""
    from shopsense.errors import ValidationError

    f: dict[str, Any] = {}
    if category:
        f["category"] = category
    if brand:
        f["brand"] = brand
    if price_min is not None:
        f["price_min"] = price_min
    if price_max is not None:
        f["price_max"] = price_max
    if in_stock is not None:
        f["in_stock"] = in_stock
    if rating_min is not None:
        f["rating_min"] = rating_min
    if attr:
        attrs = {}
        for a in attr:
            name, sep, value = a.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise ValidationError(f"The 'attr' parameter must look like 'name:value'. Got {a!r} "
                                      "instead.", field="attr")
            attrs[name.strip()] = value.strip()
        f["attributes"] = attrs
    return f


@router.get("/search", response_model=ResultsOut, summary="Search products")
async def search(
    q: str = Query(..., min_length=1, max_length=500, description="the shopper's query"),
    k: int = Query(20, ge=1, le=200, description="number of results"),
    user_id: str | None = Query(None, min_length=1, max_length=256, description="personalise for"),
    category: str | None = Query(None, max_length=256),
    brand: str | None = Query(None, max_length=256),
    price_min: float | None = Query(None, ge=0, le=1e12),
    price_max: float | None = Query(None, ge=0, le=1e12),
    in_stock: bool | None = Query(None),
    rating_min: float | None = Query(None, ge=0, le=5),
    attr: list[str] | None = Query(None, description="attribute filter 'name:value', repeatable"),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    filters = filters_from(category, brand, price_min, price_max, in_stock, rating_min, attr)
    state.saw(user_id)
    key = ("search", q, k, user_id, tuple(sorted((a, str(b)) for a, b in filters.items())))
    return await state.answer(
        key, lambda: engine.search(q, filters=filters or None, user_id=user_id, k=k), user_id)
