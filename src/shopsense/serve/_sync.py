"""Keep one worker's engine in step with the writes the other workers acknowledged.

Each worker holds caches derived from the store: per-user histories and profiles,
basket counts, the catalogue. A write through worker A updates A's engine at once
(the engine's own hooks); :class:`ChangeFeed` carries it to the others: A publishes
the change after the store committed it, and every worker, before each request and
once a second in the background, reads the changes it has not seen and replays them
into its engine's in-memory hooks. The store itself is never written twice.

The feed never holds a user id: it holds the home's pseudonym of it (the keyed hash
the logs use, :class:`~shopsense.serve._privacy.Pseudonymizer`), so deleting a user
leaves no trace in the shared state. A worker maps a pseudonym back only for the users
it has served itself (:meth:`ChangeFeed.saw`), which are the only users its engine
holds anything about. Workers on several machines (Redis) need the same ``.log_secret``
in their homes, as they need the same models.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from shopsense.context import UserCache
from shopsense.serve._shared import Change, FeedGap, SharedState

__all__ = ["ChangeFeed", "Syncer"]

log = logging.getLogger(__name__)


class ChangeFeed:
    """This worker's position in the shared change feed, and what it does with news."""

    def __init__(self, shared: SharedState, pseudo: Callable[[str], str], max_users: int = 100_000) -> None:
        self.shared = shared
        self.pseudo = pseudo
        # pseudonym -> user id, for the users whose requests this worker served last (the
        # engine's per-user caches hold no others): a user pushed out is dropped from the
        # engine's caches too, so no cached history outlives the means to hear it changed
        self._users: UserCache[str, str] = UserCache(max_users, on_evict=self._evicted)
        #: names this worker in the feed, so it skips the changes it made itself
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.engine: Any = None
        #: the response cache, told of every change (its own included) by the users it names
        self.cache: Any = None
        # read before the engine opens: a change made while it loads is replayed, not lost
        self.position = shared.head()
        self._lock = threading.Lock()
        # the shared state's bell when this worker last found itself at the head
        self._bell_heard: int | None = None

    def saw(self, user_id: str | None) -> None:
        """A request names ``user_id``: this worker's engine may now cache something of it."""
        if user_id:
            self._users[self.pseudo(user_id)] = user_id

    def _evicted(self, pseudonym: str, user_id: str) -> None:
        if self.engine is not None:  # what its services' on_events drop: history, profile
            self.engine.notify_events([_event(user_id, "view")])

    # -- writing -------------------------------------------------------------------
    def events_stored(self, events: Sequence[Any]) -> int:
        """One change for a group of stored events (the writer commits many requests at once)."""
        pairs = sorted({(self.pseudo(str(e.user_id)), _type(e)) for e in events})
        seq = self.shared.publish("events", self.origin, tuple(pairs))
        if self.cache is not None:
            self.cache.users_changed({p for p, _ in pairs}, seq)
        return self._step_over(seq)

    def products_changed(self) -> int:
        seq = self.shared.publish("products", self.origin)
        if self.cache is not None:
            self.cache.products_changed(seq)
        return self._step_over(seq)

    def user_forgotten(self, user_id: str) -> int:
        p = self.pseudo(user_id)
        self._users.pop(p, None)
        seq = self.shared.publish("forget", self.origin, ((p, ""),))
        if self.cache is not None:
            self.cache.users_changed((p,), seq)
        return self._step_over(seq)

    def _step_over(self, seq: int) -> int:
        """A change this worker made needs no replay here (its engine and cache know it):
        where it is the next one after the position, step over it, so the next request finds
        nothing to sync. Before, every request after a worker's own commit took a thread and
        this lock to read back a change it then skipped: under a mixed load at 1 worker, all
        of them, one at a time. A change with others' before it is left to :meth:`sync`
        (never blocks: a sync in progress will reach it)."""
        if self._lock.acquire(blocking=False):
            try:
                if self.position == seq - 1:
                    self.position = seq
            finally:
                self._lock.release()
        return seq

    def behind(self) -> bool:
        """Whether another worker may have written since the last :meth:`sync`. Cheap where
        the shared state is a local file (one read, no lock shared with writers), so a
        request pays for a sync only when there is news; elsewhere (Redis) always True."""
        if not self.shared.local_reads:
            return True
        bell = self.shared.bell()  # read before the head: a change rung later is still news
        if bell is not None and bell == self._bell_heard:
            return False
        behind = self.shared.head() != self.position
        if not behind:
            self._bell_heard = bell
        return behind

    # -- reading -------------------------------------------------------------------
    def _apply(self, changes: list[Change]) -> None:
        engine = self.engine
        if engine is None:
            return
        if any(c.kind == "products" for c in changes):
            engine.notify_products_changed()
        # events of users this worker never served still matter to shared counts (baskets):
        # they are replayed under the pseudonym, which no per-user cache holds
        events = [_event(self._users.get(p, p), t) for c in changes if c.kind == "events"
                  for p, t in c.users]
        if events:
            engine.notify_events(events)
        for c in changes:
            if c.kind != "forget":
                continue
            for p, _ in c.users:
                user_id = self._users.pop(p, None)
                if user_id is not None:
                    engine.forget_in_memory(user_id)
                else:
                    # nothing cached under the user here; the basket counts it took part in
                    # are refitted from the store (without it) within bundles_refresh_s
                    engine.notify_events([_event(p, "purchase")])

    def sync(self) -> int:
        """Replay every change since the last call into the engine; returns the new position."""
        with self._lock:
            while True:
                try:
                    batch = self.shared.changes_since(self.position)
                except FeedGap as gap:
                    log.warning("change feed: changes after %d are gone (head %d); resynchronising "
                                "every in-memory cache", self.position, gap.head)
                    if self.engine is not None:
                        _resync_all(self.engine)
                    if self.cache is not None:
                        self.cache.reset(gap.head)
                    self.position = gap.head
                    return self.position
                if not batch:
                    return self.position
                self._apply([c for c in batch if c.origin != self.origin])
                if self.cache is not None:
                    _tell_cache(self.cache, batch)
                self.position = batch[-1].seq


class Syncer:
    """A daemon thread that syncs the feed and tidies the shared state now and then,
    so an idle worker stays close to the head and never has far to catch up; it also
    swaps in an index or model version that ``shopsense index`` / ``train`` wrote
    (:meth:`Engine.swap_new_builds`: loaded beside the serving one, no request waits),
    and once the new one serves, calls ``swapped()`` (the response cache's version); ``tick()``
    runs every interval (the precomputed answers' age)."""

    def __init__(self, feed: ChangeFeed, interval_s: float = 1.0, tidy_every: int = 60,
                 swapped: Callable[[], None] | None = None, tick: Callable[[], None] | None = None) -> None:
        self.feed, self.interval_s, self.tidy_every = feed, interval_s, tidy_every
        self.swapped, self.tick = swapped, tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shopsense-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval_s):
            try:
                self.feed.sync()
                # joined here, in this thread: requests keep the old build until the new one
                # is in, and cached answers of the old one are dropped only then
                engine = self.feed.engine
                if engine is not None and engine.swap_new_builds(wait=True) and self.swapped is not None:
                    self.swapped()
                if self.tick is not None:
                    self.tick()
                ticks += 1
                if ticks % self.tidy_every == 0:
                    self.feed.shared.housekeeping()
            except Exception as exc:  # noqa: BLE001 - retried next tick; requests sync themselves
                log.warning("background feed sync failed: %s", exc)


# -- the engine hooks a replay uses ---------------------------------------------------
# The engine applies these itself when a write goes through it; a replay runs the
# in-memory part only (the store already holds the write): Engine.notify_events,
# notify_products_changed and forget_in_memory.

def _tell_cache(cache: Any, changes: list[Change]) -> None:
    for c in changes:
        if c.kind == "products":
            cache.products_changed(c.seq)
        else:
            cache.users_changed({p for p, _ in c.users}, c.seq)


def _type(event: Any) -> str:
    t = getattr(event, "type", "")
    return str(getattr(t, "value", t))


def _event(user_id: str, type_: str) -> Any:
    """An event that carries only what the services' ``on_events`` read: who and what kind."""
    from shopsense.catalog import Event, EventType

    return Event.model_construct(user_id=user_id, item_id=None, type=EventType(type_))


def _resync_all(engine: Any) -> None:
    """Changes were missed: assume the catalogue and every user's history changed."""
    engine.notify_products_changed()
    ev = engine.store.events()
    users = sorted({str(u) for u in ev.user_id})
    if users:
        engine.notify_events([_event(u, "purchase") for u in users])
