"""Event posts off the read path: one writer thread per worker, group commit.

``POST /events`` hands its (validated) batch to :class:`EventWriter` and waits. The
writer thread takes every batch queued since its last commit (counted once it holds the
store's write locks, so a worker that waited for another worker's commit brings everything
queued meanwhile) and stores them in one transaction
(:meth:`SQLiteStore.add_event_batches`: one durable commit, each request's batch all or
nothing), then tells the engine's in-memory hooks, the response cache and
the other workers (one change on the shared feed for the whole group), and only then
answers each waiting request. So an acknowledged event is on disk, the next read of
that user is computed from it, and no reader ever waits for a write: reads use their
own connections, and N concurrent posts cost one commit instead of N lock round trips.

At shutdown :meth:`EventWriter.close` stops taking new batches, commits what is queued
and answers it before the engine closes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventWriter", "WriterClosed"]

log = logging.getLogger(__name__)


class WriterClosed(RuntimeError):
    """The worker is shutting down and takes no new events (the client should retry)."""


@dataclass
class _Job:
    events: Sequence[Any]
    future: Future[int] = field(default_factory=Future)


class EventWriter:
    """Commits queued event batches in groups of up to ``max_events`` events.

    ``store``: the engine's store. ``committed(events)`` runs in the writer thread after
    each commit with the events that were stored (the engine's hooks, the cache, the
    feed); an exception there fails the group's requests (their events are stored; the
    client may resend them: identical events are not stored twice). A store without
    ``add_event_batches`` gets one ``add_events`` call per request, still from this one
    thread.
    """

    def __init__(self, store: Any, committed: Callable[[list[Any]], None], *, max_events: int = 10_000,
                 durable: bool = True) -> None:
        self.store = store
        self.committed = committed
        self.max_events = max_events
        self.durable = durable
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()  # orders submit() against close()
        self._thread = threading.Thread(target=self._run, name="shopsense-event-writer", daemon=True)
        #: commits made and requests answered, for /stats and the tests
        self.commits = 0
        self.requests = 0
        self._stop = False  # the writer thread saw close()'s marker

    def start(self) -> EventWriter:
        self._thread.start()
        return self

    def submit(self, events: Sequence[Any]) -> Future[int]:
        """Queue one request's events; the future gives how many were new, once committed."""
        job = _Job(events)
        with self._lock:
            if self._closed:
                raise WriterClosed("This worker is shutting down; send the events again.")
            self._q.put(job)
        return job.future

    async def write(self, events: Sequence[Any]) -> int:
        """:meth:`submit`, awaited without holding a thread."""
        return await asyncio.wrap_future(self.submit(events))

    def close(self, timeout: float = 30.0) -> None:
        """Take no more batches; commit and answer the queued ones (at most ``timeout`` s)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._q.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("event writer did not finish within %.0f s", timeout)

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            first = self._q.get()
            if first is None:
                break
            self._commit([first])
        # close() was called: anything still queued was submitted before it; commit it
        rest = []
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                rest.append(job)
        if rest:
            self._commit(rest)

    def _drain(self, jobs: list[_Job]) -> list[_Job]:
        """Add to ``jobs`` everything queued since (up to ``max_events`` events in all)."""
        n = sum(len(j.events) for j in jobs)
        while n < self.max_events:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._stop = True
                break
            jobs.append(job)
            n += len(job.events)
        return jobs

    def _commit(self, jobs: list[_Job]) -> None:
        t0 = time.perf_counter()
        try:
            # the group is closed once the store's write locks are held: everything queued
            # while this worker waited for another worker's commit goes into this one
            with self._locked():
                results = self._store([j.events for j in self._drain(jobs)])
        except BaseException as exc:  # noqa: BLE001 - the database refused the whole group
            # the class only: a database error's message can quote a row, and so a user id
            log.error("event commit failed for %d requests: %s", len(jobs), type(exc).__name__)
            for j in jobs:
                j.future.set_exception(exc)
            return
        stored = [e for j, r in zip(jobs, results) if not isinstance(r, BaseException) for e in j.events]
        self.commits += 1
        self.requests += len(jobs)
        try:
            if stored:
                self.committed(stored)
        except BaseException as exc:  # noqa: BLE001 - stored, but not published: the client resends
            for j, r in zip(jobs, results):
                j.future.set_exception(r if isinstance(r, BaseException) else exc)
            return
        for j, r in zip(jobs, results):
            if isinstance(r, BaseException):
                j.future.set_exception(r)
            else:
                j.future.set_result(r)
        log.debug("committed %d events of %d requests in %.1f ms", len(stored), len(jobs),
                  1000 * (time.perf_counter() - t0))

    def _locked(self) -> AbstractContextManager[Any]:
        writing = getattr(self.store, "writing", None)  # SQLite: this process's and the file's
        return writing() if writing is not None else nullcontext()

    def _store(self, batches: list[Sequence[Any]]) -> list[int | BaseException]:
        group = getattr(self.store, "add_event_batches", None)
        if group is not None:
            return list(group(batches, durable=self.durable))
        out: list[int | BaseException] = []
        for b in batches:
            try:
                out.append(self.store.add_events(b))
            except (ValueError, TypeError, OverflowError) as exc:
                out.append(exc)
        return out
