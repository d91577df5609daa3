"""``POST /products``: upsert a batch of products by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from shopsense.catalog import Product
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, writer

router = APIRouter(prefix="/products", tags=["products"])

MAX_BATCH = 10_000


class UpsertOut(BaseModel):
    upserted: int
    products: int


@router.post("", response_model=UpsertOut, summary="Upsert products (batch)")
def upsert(
    products: list[Product] = Body(..., min_length=1, max_length=MAX_BATCH),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    n = engine.add_products(products)
    state.products_changed()
    total = engine.store.count_products()
    state.metrics.products.set(total)
    return {"upserted": n, "products": total}
