"""Read a test database's tables directly, on either backend: the tests check what was
stored, not only what was answered. Statements use `?` placeholders (SQLite's); the
PostgreSQL side rewrites them to psycopg's `%s`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg

from collector.store import is_url


def rows(db: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row `sql` returns, read in a connection of its own."""
    db = str(db)
    if is_url(db):
        with psycopg.connect(db, autocommit=True) as conn:
            return list(conn.execute(sql.replace("?", "%s"), list(params)).fetchall())
    conn = sqlite3.connect(db)
    try:
        inbox = Path(db + "-inbox")
        if inbox.exists():  # the accept path's tables (store/sqlite/inbox.py)
            conn.execute("ATTACH ? AS inbox", (str(inbox),))
        return list(conn.execute(sql, tuple(params)).fetchall())
    finally:
        conn.close()


def scalar(db: str | Path, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row."""
    return rows(db, sql, params)[0][0]


def json_value(value: Any) -> Any:
    """A JSON column's value: SQLite returns its text, PostgreSQL's jsonb a Python value."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value
