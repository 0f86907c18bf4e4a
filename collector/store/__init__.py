"""Storage: the interface (base.Store), the rules every backend keeps (core), and two
backends: SQLite (one file, the default) and PostgreSQL (`postgresql://` URLs)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from collector.settings import DEFAULT_MAX_BACKLOG
from collector.store.base import Store
from collector.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "Store", "display", "is_url", "open_store"]

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(db: str) -> bool:
    """Whether `--db` names a PostgreSQL server rather than a SQLite file."""
    return db.startswith(URL_SCHEMES)


def display(db: str) -> str:
    """`--db` as it may be shown or logged: a URL without its password."""
    if not is_url(db):
        return db
    parts = urlsplit(db)
    if parts.password is None:
        return db
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(db: str, *, max_backlog: int = DEFAULT_MAX_BACKLOG) -> Store:
    """The store for `--db`: a `postgresql://` URL, else a SQLite file path."""
    if is_url(db):
        # Imported here: SQLite users never load psycopg.
        from collector.store.postgres.store import PostgresStore

        return PostgresStore(db, max_backlog=max_backlog)
    return SQLiteStore(db, max_backlog=max_backlog)
