"""The one mapping from the shopsense error hierarchy to HTTP statuses.

Every error body has the same shape: ``{"error": <class>, "message": ..., "field": ...}``
so a client can point at the offending field. Bad input never becomes a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopsense.errors import (
    AuthError,
    MissingDependencyError,
    NotFittedError,
    NotFoundError,
    ShopsenseError,
    ValidationError,
)

__all__ = ["ApiError", "install_error_handlers", "problem", "server_error"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP-level refusal raised by the serve layer itself (auth, limits)."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field
        self.headers = headers


def problem(status: int, error: str, message: str, field: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "field": field}, status_code=status,
                        headers=headers)


#: most specific first; the first isinstance match wins
_STATUS: list[tuple[type[BaseException], int]] = [
    (ValidationError, 422),
    (NotFoundError, 404),
    (NotFittedError, 409),
    (AuthError, 401),
    (MissingDependencyError, 503),
    (ShopsenseError, 400),
]


def server_error(request: Request, exc: BaseException) -> JSONResponse:
    """The JSON 500 for an error nothing else handled, with a request id that the client sees
    and the log keeps. The log gets the route, the error's class and its stack, never its
    message nor the raw path: either can hold a user id."""
    import traceback
    import uuid

    rid = uuid.uuid4().hex[:16]
    route = getattr(request.scope.get("route"), "path", None) or "unmatched"
    log.error("server error request_id=%s %s %s: %s\n%s", rid, request.method, route, type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return problem(500, "InternalError", f"Internal error; request id {rid}.", None,
                   headers={"X-Request-ID": rid})


def _field_of_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(x) for x in loc if x not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(x) for x in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.error, exc.message, exc.field, exc.headers)

    @app.exception_handler(ShopsenseError)
    async def _shopsense(_: Request, exc: ShopsenseError) -> JSONResponse:
        status = next(s for cls, s in _STATUS if isinstance(exc, cls))
        field = getattr(exc, "field", None)
        if isinstance(exc, NotFoundError):
            field = f"{exc.kind}_id"
        return problem(status, type(exc).__name__, str(exc), field)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        field = _field_of_loc(first.get("loc", ()))
        return problem(422, "ValidationError", f"field {field!r}: {first.get('msg')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, "HTTPError", str(exc.detail), None,
                       getattr(exc, "headers", None))

    @app.exception_handler(ValueError)
    async def _value(_: Request, exc: ValueError) -> JSONResponse:
        # a plain ValueError from a capability is bad input by Python convention
        return problem(422, "ValidationError", str(exc), getattr(exc, "field", None))

    @app.exception_handler(ImportError)
    async def _missing(_: Request, exc: ImportError) -> JSONResponse:
        log.error("capability unavailable: %s", exc)
        # the detail (module paths) goes to the log, not to the client
        return problem(503, "CapabilityUnavailable", "This capability is not available on this "
                       "server (not installed or not built).")
