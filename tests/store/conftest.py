"""A throwaway PostgreSQL for the session (tests/services.py), and a fresh schema of it
per test, so every test starts from an empty store without a new server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests import services


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Superuser URL of a server started for this session (skips where none is installed)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'shopsense[postgres]'")
    with services.or_skip(services.postgres_server()) as url:
        yield url


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose sessions put (and find) their tables in ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A new, empty schema; dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


@pytest.fixture
def postgres_schema_url(postgres_url: str, postgres_schema: str) -> str:
    """A URL whose tables live in a new, empty schema."""
    return with_search_path(postgres_url, postgres_schema)
