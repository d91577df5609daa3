"""``/users/{user_id}``: recommendations, and deletion of everything about a user."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from shopsense.serve._answers import DEFAULT_K
from shopsense.serve._results import ResultsOut
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader, writer
from shopsense.serve.routers.search import filters_from

router = APIRouter(prefix="/users", tags=["users"])
log = logging.getLogger(__name__)

UserId = Path(..., min_length=1, max_length=256)


class DeletedOut(BaseModel):
    user_id: str
    removed: dict[str, Any]


@router.get("/{user_id}/recommendations", response_model=ResultsOut,
            summary="Recommendations for a user")
async def recommendations(
    user_id: str = UserId,
    k: int = Query(DEFAULT_K, ge=1, le=200),  # the k answers are precomputed for
    category: str | None = Query(None, max_length=256),
    brand: str | None = Query(None, max_length=256),
    price_min: float | None = Query(None, ge=0, le=1e12),
    price_max: float | None = Query(None, ge=0, le=1e12),
    in_stock: bool | None = Query(None),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    filters = filters_from(category, brand, price_min, price_max, in_stock, None, None)
    state.saw(user_id)
    if not filters and state.answers is not None and k == state.answers.k:
        # the precomputed lane steps aside while this worker is behind the change feed (other
        # workers' events: 2 workers under the mixed load served 8% of recommendations
        # ahead against 19% for one); get_engine has caught up by now, so a user the feed did
        # not name still has a valid answer
        body = state.answers.get(user_id, state.cache.stamp(user_id))
        if body is not None:
            state.metrics.cache.labels("precomputed").inc()
            return Response(body, media_type="application/json", headers={"X-Cache": "precomputed"})
    key = ("recommend", user_id, k, tuple(sorted((a, str(b)) for a, b in filters.items())))
    return await state.answer(
        key, lambda: engine.recommend(user_id, k=k, filters=filters or None), user_id)


@router.delete("/{user_id}", response_model=DeletedOut,
               summary="Forget a user: events, profiles, index and model entries")
def delete_user(
    user_id: str = UserId,
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    removed = engine.delete_user(user_id)
    state.user_forgotten(user_id)  # cached lists may have been computed from this user's events
    log.info("deleted user %s: %s", state.pseudo(user_id), removed)
    return {"user_id": user_id, "removed": removed}
