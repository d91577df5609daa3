"""Per-key rate limits and a request body size limit.

The token bucket is written by hand (a dozen lines, in each shared-state back-end)
because the bucket is chosen per request from the API key resolved by our own auth
dependency, which decorator-based limiters such as slowapi cannot see. The buckets
live in the shared state (:mod:`shopsense.serve._shared`), so N workers together
allow what one did.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsense.serve._shared import SharedState

__all__ = ["BodySizeLimit", "RateLimiter"]


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests, bursts up to the same.

    The bucket is shared by the workers, and a worker takes a *lease* of
    ``lease_s`` seconds' worth of tokens at a time (``per_minute * lease_s / 60``, at
    least one), spending it locally until it runs out or expires: a client at 10,000
    requests a minute costs one shared update per ~16 requests, not one per request.
    The workers together never allow more than the bucket holds; a client spread over
    N workers may be refused up to (N - 1) leases early. Below 600 a minute a lease is
    one token, exactly the shared bucket.
    """

    def __init__(self, per_minute: int, shared: SharedState, lease_s: float = 0.1) -> None:
        self.per_minute = per_minute
        self.shared = shared
        self.lease = max(1, int(per_minute * lease_s / 60.0))
        self.lease_ttl_s = max(1.0, lease_s)
        self._leases: dict[str, tuple[int, float]] = {}  # client -> (tokens left, expires at)
        self._lock = threading.Lock()

    def take_local(self, client: str) -> bool:
        """Spend one token of this worker's lease for ``client``; False when it has none
        (then :meth:`hit`, which may wait on the shared state)."""
        if self.lease == 1:
            return False
        with self._lock:
            left, until = self._leases.get(client, (0, 0.0))
            if left <= 0 or time.monotonic() > until:
                return False
            self._leases[client] = (left - 1, until)
            return True

    def hit(self, client: str) -> float:
        """Take one token; returns 0 when allowed, else seconds until a token is free."""
        if self.take_local(client):
            return 0.0
        if self.lease == 1:
            return self.shared.hit(client, self.per_minute)
        taken, wait = self.shared.take(client, self.per_minute, self.lease)
        if taken:
            now = time.monotonic()
            with self._lock:
                if len(self._leases) > 10_000:  # forget the clients whose lease ran out
                    self._leases = {c: v for c, v in self._leases.items() if v[1] > now and v[0] > 0}
                self._leases[client] = (taken - 1, now + self.lease_ttl_s)
            return 0.0
        return wait


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
