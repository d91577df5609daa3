"""``POST /events``: a batch of shopper events (all or nothing)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from shopsense.catalog import Event
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, writer

router = APIRouter(tags=["events"])

MAX_BATCH = 10_000


class EventsOut(BaseModel):
    received: int
    stored: int
    duplicates: int


@router.post("/events", response_model=EventsOut, summary="Record events (batch)")
def post_events(
    events: list[Event] = Body(..., min_length=1, max_length=MAX_BATCH),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    stored = engine.add_events(events)
    state.metrics.events.inc(stored)
    # committed by the store above: the reply is sent only once the events are durable
    state.events_stored(events)  # recommendations react to new events, in every worker
    return {"received": len(events), "stored": stored, "duplicates": len(events) - stored}
