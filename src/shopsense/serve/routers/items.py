"""``/items/{item_id}``: a product, its similar items, its substitutes and its complements."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from shopsense.serve._results import ResultsOut, _clean, render
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader
from shopsense.serve.routers.search import filters_from

router = APIRouter(prefix="/items", tags=["items"])

ItemId = Path(..., min_length=1, max_length=256)


def _cached(state: ServeState, key: Any, compute: Any) -> Any:
    hit = state.cache.get(key)
    if hit is not None:
        state.metrics.cache.labels("hit").inc()
        return hit
    state.metrics.cache.labels("miss").inc()
    out = compute()
    state.cache.put(key, out)
    return out


@router.get("/{item_id}", summary="One product")
def get_item(item_id: str = ItemId, _: Principal = Depends(reader),
             engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _clean(engine.product(item_id).model_dump(mode="json"))


@router.get("/{item_id}/similar", response_model=ResultsOut, summary="Items similar to one item")
def similar(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    category: str | None = Query(None, max_length=256),
    in_stock: bool | None = Query(None),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    filters = filters_from(category, None, None, None, in_stock, None, None)
    engine.product(item_id)  # 404 for an unknown id, whatever the capability does
    return _cached(state, ("similar", item_id, k, tuple(sorted(filters.items()))),
                   lambda: render(engine.similar(item_id, k=k, filters=filters or None),
                                  engine, "similar"))


@router.get("/{item_id}/complements", response_model=ResultsOut,
            summary="Items bought with this one (complements, not substitutes)")
def complements(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    engine.product(item_id)
    return _cached(state, ("complements", item_id, k),
                   lambda: render(engine.complements(item_id, k=k), engine, "complements"))


@router.get("/{item_id}/substitutes", response_model=ResultsOut,
            summary="Items that could replace this one (similar text and category, rarely bought together)")
def substitutes(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    engine.product(item_id)
    return _cached(state, ("substitutes", item_id, k),
                   lambda: render(engine.substitutes(item_id, k=k), engine, "substitutes"))
