"""Durable storage behind one interface."""

from shopsense.store._base import EventArrays, Store
from shopsense.store._sqlite import SQLiteStore

__all__ = ["EventArrays", "SQLiteStore", "Store"]
