"""Even out keep-alive connections between the workers of ``shopsense serve --workers N``.

Each worker listens on its own SO_REUSEPORT socket and the kernel hands each new
connection to one of them by a hash of its addresses: fair on average, but a fixed set of
keep-alive connections (a load generator's 32, a proxy's pool) stays wherever the hash
put it. Measured on Home Depot search, 2 workers, 32 connections: 21 on one worker and 11
on the other, so the busier worker's requests waited twice as long (p99 134.6 ms against
107.1 ms with a 17/15 split the day before).

Here a worker that holds more than its share of the open connections (ceil(total / N),
counted by every worker in one shared array) answers one request with ``Connection:
close``: the client opens a new connection, which the kernel hashes again. Only the
busier worker sheds, at most one connection per ``interval_s``, so the counts move toward
an even split within a fifth of a second under load and never oscillate. An idle worker never sheds
(its share is at least what it holds). Closing a keep-alive connection after a response
is ordinary HTTP/1.1 (nginx does it every ``keepalive_requests``; gRPC's
``max_connection_age`` exists to rebalance the same way): every client reconnects on its
own, and no request is refused or retried.

Written here because nothing in uvicorn balances connections between worker processes;
the alternative, a parent that accepts every connection and passes it to a worker,
would put a process hop in front of every new connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableSequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ConnectionBalance", "ShedExcessConnections", "balance_connections"]

#: this worker's balance; None in a single-worker server, a test app or spawned workers
_CURRENT: ConnectionBalance | None = None


class ConnectionBalance:
    """One worker's view: its slot in ``slots`` (one int per worker, shared memory the
    supervisor made before forking) and ``count()``, its own open connections."""

    def __init__(self, slots: MutableSequence[int], index: int, count: Callable[[], int],
                 interval_s: float = 0.02) -> None:
        # 0.02 s, not 0.1: a fresh set of 32 connections split 18/14 or 19/13 by the kernel
        # took ~1 s to even out at one shed per 0.1 s (each reconnect lands on the busier worker
        # again half the time), and that second's waits were the run's p99. Home Depot search,
        # 2 workers, c32, the split read 1 s in: even in 10 of 10 runs at 0.02 s, in 6 of 10
        # at 0.1 s. A local reconnect takes well under 0.02 s; each response refreshes the counts
        self.slots, self.index, self.count, self.interval_s = slots, index, count, interval_s
        self.last = 0.0
        self.shed_total = 0  # connections this worker asked its clients to re-open

    def shed(self) -> bool:
        """Whether the answer being sent should close its connection. Called once per
        response; reads N ints of shared memory (no lock: a value a moment stale only
        delays or skips one shed, and each worker writes only its own slot)."""
        mine = self.count()
        self.slots[self.index] = mine
        if mine <= 1:
            return False
        n = len(self.slots)
        if mine <= -(-sum(self.slots) // n):  # ceil(total / n): its fair share
            return False
        now = time.monotonic()
        if now - self.last < self.interval_s:  # the last shed's reconnect may not be counted yet
            return False
        self.last = now
        self.shed_total += 1
        return True


def balance_connections(slots: MutableSequence[int], index: int, count: Callable[[], int]) -> ConnectionBalance:
    """Install this worker's balance (called in the worker before its server starts)."""
    global _CURRENT
    slots[index] = 0
    _CURRENT = ConnectionBalance(slots, index, count)
    return _CURRENT


class ShedExcessConnections:
    """ASGI middleware: adds ``Connection: close`` to a response when
    :meth:`ConnectionBalance.shed` says so (outermost, so every answer can carry it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        balance = _CURRENT
        if balance is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and balance.shed():
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)
