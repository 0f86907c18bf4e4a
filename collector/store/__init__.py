"""Storage: a small interface (base.Store) and its SQLite implementation."""

from collector.store.base import Store
from collector.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "Store"]
