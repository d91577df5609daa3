"""``POST /carts/complete``: what completes a cart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shopsense.serve._results import ResultsOut, render
from shopsense.serve._state import Principal, get_engine, reader

router = APIRouter(prefix="/carts", tags=["carts"])


class CartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[str] = Field(..., min_length=1, max_length=200,
                             description="product ids in the cart")
    k: int = Field(10, ge=1, le=200)


@router.post("/complete", response_model=ResultsOut, summary="Complete a cart")
def complete(cart: CartIn, _: Principal = Depends(reader), engine: Any = Depends(get_engine)) -> Any:
    return render(engine.complete_cart(cart.items, k=cart.k), engine, "cart")
