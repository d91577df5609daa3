"""``POST /events``: a batch of shopper events (all or nothing), committed by the worker's
event writer in a group with the other requests' batches (:mod:`shopsense.serve._writer`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from shopsense.catalog import Event
from shopsense.serve._errors import ApiError
from shopsense.serve._state import Principal, ServeState, get_state, writer
from shopsense.serve._writer import WriterClosed

router = APIRouter(tags=["events"])

MAX_BATCH = 10_000


class EventsOut(BaseModel):
    received: int
    stored: int
    duplicates: int


@router.post("/events", response_model=EventsOut, summary="Record events (batch)")
async def post_events(
    events: list[Event] = Body(..., min_length=1, max_length=MAX_BATCH),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
) -> Any:
    if state.writer is None:
        raise ApiError(503, "NotReady", "This worker is starting or shutting down; send the events again.",
                       headers={"Retry-After": "1"})
    try:
        # answered once the writer committed this batch (with whatever else was queued) and
        # told the engine, the cache and the other workers: acknowledged means durable
        stored = await state.writer.write(events)
    except WriterClosed as exc:
        raise ApiError(503, "ShuttingDown", str(exc), headers={"Retry-After": "1"}) from None
    return {"received": len(events), "stored": stored, "duplicates": len(events) - stored}
