"""Every store back-end runs the one contract suite (tests/store/contract.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsense.store import SQLiteStore, Store
from tests.store.contract import Backend, StoreContract


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> Store:
        return SQLiteStore(self.path)

    def raw_bytes(self) -> bytes:
        # the database file and its write-ahead log (the store checkpoints it on erasure)
        return b"".join(p.read_bytes() for p in sorted(self.path.parent.glob(self.path.name + "*")))


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return SQLiteBackend(tmp_path / "store.sqlite3")


class TestStoreContract(StoreContract):
    pass
