"""Every store back-end runs the one contract suite (tests/store/contract.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shopsense.store import PostgresStore, SQLiteStore, Store
from tests.store.conftest import with_search_path
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


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, admin_url: str, schema: str) -> None:
        self.admin_url, self.schema = admin_url, schema
        self.url = with_search_path(admin_url, schema)

    def open(self) -> Store:
        return PostgresStore(self.url)

    def raw_bytes(self) -> bytes | None:
        """The files of every table, index and TOAST relation of the schema, after a
        checkpoint has written the shared buffers to them."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
            rels = [r[0] for r in conn.execute(
                "WITH own AS (SELECT oid, reltoastrelid FROM pg_class WHERE relnamespace = %s::regnamespace) "
                "SELECT pg_relation_filepath(oid) FROM own "
                "UNION SELECT pg_relation_filepath(reltoastrelid) FROM own WHERE reltoastrelid <> 0 "
                "UNION SELECT pg_relation_filepath(indexrelid) FROM pg_index "
                "WHERE indrelid IN (SELECT reltoastrelid FROM own)", (self.schema,)).fetchall()
                if r[0] is not None]  # a partitioned parent has no storage of its own
        if not data_dir.is_dir():
            return None  # a server on another machine
        out = []
        for rel in rels:
            path = data_dir / rel
            # the main fork and its 1 GB segments, free-space and visibility maps
            pattern = re.compile(re.escape(path.name) + r"(\.\d+|_fsm|_vm|_init)?")
            out += [p.read_bytes() for p in sorted(path.parent.iterdir()) if pattern.fullmatch(p.name)]
        return b"".join(out)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("postgres_url"),
                               request.getfixturevalue("postgres_schema"))
    return SQLiteBackend(tmp_path / "store.sqlite3")


class TestStoreContract(StoreContract):
    pass
