"""``store.sqlite3`` holds every shopper's events: created 0600, like the API keys file
(hostile-input issue, family 4; it was created world-readable)."""

from __future__ import annotations

import os
import stat

from shopsense.catalog import Event
from shopsense.store import SQLiteStore


def test_store_files_are_created_owner_only(tmp_path):
    old = os.umask(0o022)  # the usual umask, which made the file 0644
    try:
        store = SQLiteStore(tmp_path / "store.sqlite3")
        store.add_events([Event(user_id="u", item_id="i", type="view")])
        files = sorted(p.name for p in tmp_path.iterdir())
        assert "store.sqlite3-wal" in files
        for name in files:
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        store.close()
    finally:
        os.umask(old)


def test_an_existing_store_keeps_its_mode(tmp_path):
    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()
    path.chmod(0o640)  # the owner chose to share it with a group
    SQLiteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
