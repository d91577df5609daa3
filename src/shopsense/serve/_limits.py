"""Per-key rate limits and a request body size limit.

The token bucket is written by hand (a dozen lines, in each shared-state back-end)
because the bucket is chosen per request from the API key resolved by our own auth
dependency, which decorator-based limiters such as slowapi cannot see. The buckets
live in the shared state (:mod:`shopsense.serve._shared`), so N workers together
allow what one did.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsense.serve._shared import SharedState

__all__ = ["BodySizeLimit", "RateLimiter"]


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests, bursts up to the same."""

    def __init__(self, per_minute: int, shared: SharedState) -> None:
        self.per_minute = per_minute
        self.shared = shared

    def hit(self, client: str) -> float:
        """Take one token; returns 0 when allowed, else seconds until a token is free."""
        return self.shared.hit(client, self.per_minute)


class BodySizeLimit:
    """Reject bodies over ``max_bytes`` with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        seen = 0
        started = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes and not started:
                    # answer now; the app sees a disconnect and whatever it sends is dropped
                    rejected = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if rejected:
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Send) -> None:
        import json

        body = json.dumps({"error": "PayloadTooLarge", "field": "body",
                           "message": f"Request body over the limit of {self.max_bytes} bytes."}).encode()
        headers: list[Any] = [(b"content-type", b"application/json"),
                              (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
