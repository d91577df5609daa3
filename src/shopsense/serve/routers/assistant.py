"""``POST /assistant``: one turn of the shopping assistant; ``GET /assistant/policies/{file}``:
the shop's policy file an answer links to (headings carry the passages' anchors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from shopsense.errors import NotFoundError
from shopsense.serve._errors import ApiError
from shopsense.serve._limits import RateLimiter
from shopsense.serve._results import _clean
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader, shared_call

router = APIRouter(prefix="/assistant", tags=["assistant"])

#: assistant turns per minute and client, on top of the server's own limit (a turn can
#: run a search, a complement list and a policy lookup)
ASSISTANT_PER_MINUTE = 60


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(..., min_length=1, max_length=128, description="the conversation; the client picks it")
    text: str = Field(..., max_length=1000, description="what the shopper typed")
    user_id: str | None = Field(None, min_length=1, max_length=256,
                                description="links the session to a user, so DELETE /users/{id} erases it")


class AnswerOut(BaseModel):
    """Answer text, the facts it cites, the products to show and the dialogue state."""

    model_config = ConfigDict(extra="allow")

    text: str
    intent: str
    facts: list[dict[str, Any]]
    products: list[dict[str, Any]]
    state: dict[str, Any]


def _limit(state: ServeState, p: Principal) -> None:
    per_minute = min(ASSISTANT_PER_MINUTE, state.settings.rate_limit_per_minute)
    limiter = RateLimiter(per_minute, state.shared)  # type: ignore[arg-type]
    wait = shared_call(state.shared, lambda: limiter.hit(f"assistant:{p.bucket}"))
    if wait > 0:
        state.metrics.rate_limited.inc()
        raise ApiError(429, "RateLimited", f"Rate limit of {per_minute} assistant turns per minute exceeded for "
                       f"{p.bucket}; retry in {wait:.1f} s.", "X-API-Key",
                       headers={"Retry-After": str(max(1, round(wait)))})


@router.post("", response_model=AnswerOut, summary="Ask the shopping assistant (one turn)")
def ask(req: AskIn, principal: Principal = Depends(reader), state: ServeState = Depends(get_state),
        engine: Any = Depends(get_engine)) -> Any:
    _limit(state, principal)
    if state.feed is not None and req.user_id:
        state.feed.saw(req.user_id)
    return _clean(engine.ask(req.session_id, req.text, user_id=req.user_id).as_dict())


@router.get("/policies/{name}", response_class=HTMLResponse, summary="A policy file the assistant quotes")
def policy_page(name: str, _: Principal = Depends(reader), engine: Any = Depends(get_engine)) -> HTMLResponse:
    from shopsense.assist import policy_files, render_policy_html

    files = {p.name: p for p in policy_files(engine.paths.policies)}
    if name not in files:  # only the listed files: never a path under or outside the home
        raise NotFoundError("policy", name)
    return HTMLResponse(render_policy_html(name, files[name].read_text(encoding="utf-8", errors="replace")))
