"""``/items/{item_id}``: a product, its similar items, its substitutes and its complements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from shopsense.serve._results import ResultsOut, _clean
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader
from shopsense.serve.routers.search import filters_from

router = APIRouter(prefix="/items", tags=["items"])

ItemId = Path(..., min_length=1, max_length=256)


def _known(engine: Any, item_id: str, compute: Callable[[], Any]) -> Callable[[], Any]:
    """``compute``, after a 404 for an unknown id whatever the capability would do (both run
    where :meth:`ServeState.answer` runs a computation; a 404 is never cached)."""
    def checked() -> Any:
        engine.product(item_id)
        return compute()

    return checked


@router.get("/{item_id}", summary="One product")
def get_item(item_id: str = ItemId, _: Principal = Depends(reader),
             engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _clean(engine.product(item_id).model_dump(mode="json"))


@router.get("/{item_id}/similar", response_model=ResultsOut, summary="Items similar to one item")
async def similar(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    category: str | None = Query(None, max_length=256),
    in_stock: bool | None = Query(None),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    filters = filters_from(category, None, None, None, in_stock, None, None)
    return await state.answer(("similar", item_id, k, tuple(sorted(filters.items()))),
                              _known(engine, item_id, lambda: engine.similar(item_id, k=k, filters=filters or None)))


@router.get("/{item_id}/complements", response_model=ResultsOut,
            summary="Items bought with this one (complements, not substitutes)")
async def complements(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    return await state.answer(("complements", item_id, k),
                              _known(engine, item_id, lambda: engine.complements(item_id, k=k)))


@router.get("/{item_id}/substitutes", response_model=ResultsOut,
            summary="Items that could replace this one (similar text and category, rarely bought together)")
async def substitutes(
    item_id: str = ItemId,
    k: int = Query(10, ge=1, le=200),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    return await state.answer(("substitutes", item_id, k),
                              _known(engine, item_id, lambda: engine.substitutes(item_id, k=k)))
