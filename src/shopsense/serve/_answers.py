"""Precomputed answers: each known user's default recommendations, rendered before anyone asks.

The models already precompute each known user's candidate list at training (the Gorse
pattern, :mod:`shopsense.recommend._precompute`), but every request still finishes that list
(business rules, diversity, reasons, products) and renders it: ~1 ms of CPU per answer,
where the precomputed list itself is read in microseconds. Gorse serves its cached
recommendations in under a millisecond because it keeps the *finished* list per user. This
module does the same for ``GET /users/{id}/recommendations`` with the default ``k`` and no
filters: the answer of every known user is computed and rendered to JSON bytes once, when
the server starts (in the supervisor before it forks the workers, so they share the pages)
and again after each model swap or when the table is older than
``precomputed_answers_max_age_s``.

An answer is served only while nothing it was computed from has changed: it is stored with
the response cache's stamp for its user (:meth:`ResponseCache.stamp`: the user's last
change on the shared feed, the catalogue's, the rules file and the model and index versions
served), so a user's event (through any worker), a deletion, a product change, a rule or a
new model sends that user to the computed path until the table is rendered again. The
computed path is the same code, so the bytes are the ones a computation would give.

:class:`PrecomputedLane` serves them in front of FastAPI: a served answer costs routing,
dependency resolution and validation otherwise (~0.4 ms of CPU per cached answer on this
machine, more than the lookup). The lane answers only what it can answer exactly as the
route would (a read key or anonymous reads allowed, a token left in the rate limit's local
lease, a worker caught up with the feed, an answer for that user); anything else, errors
included, goes to the app unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DEFAULT_K", "PrecomputedAnswers", "PrecomputedLane", "Rerender", "precompute_answers", "render_for"]

log = logging.getLogger(__name__)

#: the ``k`` a precomputed answer has: the route's default
DEFAULT_K = 10
_PREFIX, _SUFFIX = "/users/", "/recommendations"
_ROUTE = _PREFIX + "{user_id}" + _SUFFIX


@dataclass
class PrecomputedAnswers:
    """The rendered answers of one run of :func:`precompute_answers`.

    One block of bytes and a numpy array of offsets, not a dict of ``bytes`` objects: a
    forked worker that reads an answer then touches no page of the block's (a Python object's
    reference count is written on every use, which would copy its page into the worker). A
    ``bytearray``, so that a deleted user's answer is overwritten, not only left unserved."""

    k: int
    rows: dict[str, int]  # user id -> row
    offsets: np.ndarray  # (n + 1,) int64 into blob
    blob: bytearray
    #: the stamp each answer was computed at: the common part (catalogue, versions,
    #: generation) and each user's part
    common: tuple[Any, Any, Any]
    user_stamps: np.ndarray  # (n,) int64
    built_at: float = field(default_factory=time.time)
    seconds: float = 0.0  # wall time of the rendering

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, user_id: str, stamp: tuple[Any, ...]) -> bytes | None:
        """The answer for ``user_id`` if it was computed at ``stamp`` (the response cache's
        stamp for the user now), else ``None``; a stale answer is dropped for good."""
        row = self.rows.get(user_id)
        if row is None:
            return None
        products, user, version, generation = stamp
        if (products, version, generation) != self.common or user != int(self.user_stamps[row]):
            self.rows.pop(user_id, None)  # never valid again: the stamp only moves forward
            return None
        return memoryview(self.blob)[int(self.offsets[row]):int(self.offsets[row + 1])].tobytes()

    def forget(self, user_id: str) -> None:
        """Drop ``user_id``'s answer and overwrite its bytes (a deletion: nothing of it stays
        readable in this process; other processes hold their copy until they render again)."""
        row = self.rows.pop(user_id, None)
        if row is not None:
            a, b = int(self.offsets[row]), int(self.offsets[row + 1])
            self.blob[a:b] = bytes(b - a)


def precompute_answers(users: Sequence[str], compute: Callable[[str], bytes | None],
                       stamp: Callable[[str], tuple[Any, ...]], k: int = DEFAULT_K) -> PrecomputedAnswers:
    """Render ``compute(user)`` for every user (``None``: none for them), each stored with
    ``stamp(user)`` read *before* its computation, as the response cache does: a write that
    lands meanwhile leaves the answer stale at once."""
    t0 = time.perf_counter()
    rows: dict[str, int] = {}
    parts: list[bytes] = []
    user_stamps: list[int] = []
    common: tuple[Any, Any, Any] | None = None
    for u in users:
        products, user, version, generation = stamp(u)
        if common is None:
            common = (products, version, generation)
        elif (products, version, generation) != common:
            break  # the catalogue, rules or model changed meanwhile: the rest would be stale
        body = compute(u)
        if body is None:
            continue
        rows[u] = len(parts)
        parts.append(body)
        user_stamps.append(int(user))
    offsets = np.zeros(len(parts) + 1, np.int64)
    if parts:
        np.cumsum([len(b) for b in parts], out=offsets[1:])
    return PrecomputedAnswers(k=k, rows=rows, offsets=offsets, blob=bytearray(b"".join(parts)),
                              common=common or (None, None, None),
                              user_stamps=np.asarray(user_stamps, np.int64),
                              seconds=time.perf_counter() - t0)


def render_for(engine: Any, users_limit: int, stamp: Callable[[str], tuple[Any, ...]],
               render: Callable[[Any], bytes]) -> PrecomputedAnswers | None:
    """The precomputed answers of ``engine``'s known users (at most ``users_limit``), or
    ``None`` when it has no trained recommendations."""
    from shopsense.errors import NotFittedError, NotFoundError

    try:
        users = engine.recommender.known_users(users_limit)
    except (NotFittedError, NotFoundError):
        return None

    def compute(u: str) -> bytes | None:
        try:
            return render(engine.recommend(u, k=DEFAULT_K))
        except (NotFittedError, NotFoundError):  # deleted meanwhile
            return None

    out = precompute_answers(users, compute, stamp)
    log.info("precomputed the recommendations of %d users in %.1f s (%.1f MB)", len(out), out.seconds,
             len(out.blob) / 1e6)
    return out


class Rerender:
    """Runs ``render`` in a daemon thread when asked, one run at a time; a request made while
    one runs starts another after it (the first may have rendered under a stamp that moved).
    ``busy``: a run is going on (a request that only asks for fresher answers need not queue
    a second one)."""

    def __init__(self, render: Callable[[], None]) -> None:
        self._render = render
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running

    def request(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, name="shopsense-answers", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._render()
            except Exception as exc:  # noqa: BLE001 - the computed path serves meanwhile
                log.warning("rendering the precomputed answers failed: %s", exc)
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False


class PrecomputedLane:
    """Plain ASGI, in front of the app: answers ``GET /users/{id}/recommendations`` (no
    query, or ``k`` at its default) from the precomputed answers when it can answer exactly
    as the route would; passes everything else to the app. ``routes``: the app's routes (read
    at the first answer: the routers are included after the middleware), so the access log and
    metrics name the route as they do for the route's own answers."""

    def __init__(self, app: ASGIApp, state: Any, routes: Sequence[Any] = ()) -> None:
        self.app, self.state, self.routes = app, state, routes
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.state.answers is not None:
            found = self._lookup(scope)
            if found is not None and await self._allowed(found[1]):
                body, p, user_id = found
                self.state.metrics.cache.labels("precomputed").inc()
                if self._route is None:
                    self._route = next((r for r in self.routes if getattr(r, "path", None) == _ROUTE
                                        and "GET" in getattr(r, "methods", ())), None)
                scope["route"] = self._route  # for the access log and the metrics
                scope["path_params"] = {"user_id": user_id}
                scope.setdefault("state", {})["principal"] = p
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"x-cache", b"precomputed")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _lookup(self, scope: Scope) -> tuple[bytes, Any, str] | None:
        """(the answer, who asks, the user) when there is one to serve, else ``None``."""
        from shopsense.serve._errors import ApiError
        from shopsense.serve._state import feed_behind, principal_of

        state, answers = self.state, self.state.answers
        path: str = scope["path"]
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        user_id = path[len(_PREFIX):-len(_SUFFIX)]
        qs = scope.get("query_string", b"")
        if not user_id or "/" in user_id or len(user_id) > 256 or (qs and qs != b"k=%d" % answers.k):
            return None
        token = None
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                token = value.decode("latin-1")
        client = scope.get("client")
        try:
            p = principal_of(state, token, client[0] if client else "unknown")
            if state.require_read_key and p.role == "anonymous":
                return None
            if state.feed is not None and feed_behind(state):
                return None  # the app's path brings the engine up to date first
        except ApiError:
            return None  # the app answers the error
        state.saw(user_id)
        body = answers.get(user_id, state.cache.stamp(user_id))
        return None if body is None else (body, p, user_id)

    async def _allowed(self, p: Any) -> bool:
        """A token of the rate limit spent for ``p`` (the lease, else the shared bucket, as the
        app's path does); ``False``: the app answers, with the 429 if it is one."""
        from shopsense.serve._errors import ApiError
        from shopsense.serve._state import limit_wait

        try:
            return await limit_wait(self.state, p) <= 0
        except ApiError:  # the shared state is unreachable: the app's path answers the 503
            return False
