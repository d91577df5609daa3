"""Durable storage behind one interface: SQLite embedded by default, PostgreSQL when
``Settings.store_url`` names a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shopsense.errors import check_param
from shopsense.store._base import EXPOSURE_FIELDS, EXPOSURE_KINDS, EventArrays, Exposure, Store
from shopsense.store._postgres import PostgresStore
from shopsense.store._sqlite import SQLiteStore

__all__ = ["EXPOSURE_FIELDS", "EXPOSURE_KINDS", "EventArrays", "Exposure", "PostgresStore", "SQLiteStore", "Store",
           "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(settings_or_url: Any, sqlite_path: str | Path) -> Store:
    """The store that settings (or a URL) name.

    ``settings_or_url`` is a :class:`~shopsense.config.Settings` (its ``store_url`` is
    read), a ``postgresql://`` URL, or ``None``. Without a URL, the embedded SQLite
    store at ``sqlite_path`` (the engine passes ``<home>/store.sqlite3``).

    Example
    -------
    >>> store = open_store(None, tmp_path / "store.sqlite3")          # doctest: +SKIP
    >>> store = open_store("postgresql://shop@db/shopsense", "unused")  # doctest: +SKIP
    """
    url = settings_or_url if settings_or_url is None or isinstance(settings_or_url, str) \
        else getattr(settings_or_url, "store_url", None)
    if not url:
        return SQLiteStore(sqlite_path)
    check_param("store_url", _redact(url), url.startswith(_POSTGRES_SCHEMES),
                "a postgresql:// URL, or unset for the embedded SQLite store", "open_store")
    return PostgresStore(url)


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
