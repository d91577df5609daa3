"""Ingest numbered batches of events into a PostgreSQL store, printing each batch's
number after its commit. tests/store/test_postgres.py kills it with SIGKILL.

    python _ingest_worker.py URL BATCHES BATCH_SIZE [STALL_AT]

With STALL_AT, batch STALL_AT stops half-way through its COPY (inside the transaction),
prints ``stalled`` and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from shopsense.catalog import Event, EventType
from shopsense.store import PostgresStore

T0 = datetime(2014, 1, 1, tzinfo=UTC)
TYPES = (EventType.VIEW, EventType.CLICK, EventType.ADD_TO_CART, EventType.PURCHASE)


def batch(b: int, size: int) -> list[Event]:
    """The same events for the same (b, size) in every run: re-runs must converge."""
    return [Event(user_id=f"office-u{i % 503}", item_id=f"office-{i % 2420}", type=TYPES[i % 4],
                  timestamp=T0 + timedelta(seconds=i), session_id=f"s{i // 50}")
            for i in range(b * size, (b + 1) * size)]


def stall_half_way(size: int) -> None:
    write_row = psycopg.Copy.write_row
    written = 0

    def slow_write_row(self, row):  # type: ignore[no-untyped-def]
        nonlocal written
        written += 1
        if written == size // 2:
            print("stalled", flush=True)
            time.sleep(600)
        return write_row(self, row)

    psycopg.Copy.write_row = slow_write_row  # type: ignore[method-assign]


def main() -> None:
    url, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    stall_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    store = PostgresStore(url)
    for b in range(batches):
        events = batch(b, size)
        if b == stall_at:
            stall_half_way(size)
        n = store.add_events(events)
        print(b, n, flush=True)
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
