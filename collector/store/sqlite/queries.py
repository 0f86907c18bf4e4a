"""The query API's read side on SQLite: its dialect, and what only SQLite does (a WAL
read transaction as the snapshot, index hints). The
queries themselves are store/sql.py's, shared with every backend."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from collector.query.types import (
    AnalyticsQuery,
    EventsPage,
    EventsQuery,
    FunnelEvents,
    FunnelQuery,
    Scalar,
    SegmentPage,
    SegmentQuery,
    StatsQuery,
    is_number,
)
from collector.store import analytics, funnels, sql
from collector.store.columns import ColumnCache


def _path(key: str) -> str:
    return f'$."{key}"'


class SQLiteDialect(sql.Dialect):
    mark = "?"
    true = "1"
    false = "0"
    rowid = "rowid"
    collate = ""  # BINARY, the default: code point order already
    day = "date(ts / 1000, 'unixepoch')"

    def table(self, name: str, index: str | None) -> str:
        return f"{name} INDEXED BY {index}" if index else name

    def json_eq(self, column: str, key: str, value: Scalar, params: list[Any]) -> str:
        # The cheap json_extract comes first: SQLite skips the json_type check when it
        # already fails.
        path = _path(key)
        if value is None:
            params.append(path)
            return f"ifnull(json_type({column}, ?), '') = 'null'"
        if isinstance(value, bool):
            params.append(path)
            return f"ifnull(json_type({column}, ?), '') = '{'true' if value else 'false'}'"
        kind = "('integer', 'real')" if is_number(value) else "('text')"
        params.extend([path, value, path])
        return (
            f"ifnull(json_extract({column}, ?) = ?, 0) "
            f"AND ifnull(json_type({column}, ?), '') IN {kind}"
        )

    def json_text(self, column: str, key: str, params: list[Any]) -> str:
        params.append(_path(key))
        return f"json_extract({column}, ?)"

    def json_raw(self, column: str, key: str, params: list[Any]) -> str:
        params.append(_path(key))
        return f"{column} -> ?"

    def json_in(self, column: str, key: str, values: Sequence[Scalar], params: list[Any]) -> str:
        # A few flat terms (one per JSON type), whatever the list's length: an OR per
        # value would nest past SQLite's expression depth limit.
        path = _path(key)
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if is_number(v)]
        types = [("true" if v else "false") for v in values if isinstance(v, bool)]
        types += ["null"] if any(v is None for v in values) else []
        terms = []
        for group, kinds in ((texts, "('text')"), (numbers, "('integer', 'real')")):
            if group:
                params.extend([path, *group, path])
                terms.append(
                    f"(ifnull(json_extract({column}, ?) IN ({self.marks(len(group))}), 0) "
                    f"AND ifnull(json_type({column}, ?), '') IN {kinds})"
                )
        if types:
            params.extend([path, *types])
            terms.append(f"ifnull(json_type({column}, ?), '') IN ({self.marks(len(types))})")
        return " OR ".join(terms)

    def json_exists(self, column: str, key: str, exists: bool, params: list[Any]) -> str:
        params.append(_path(key))
        return f"json_type({column}, ?) IS {'NOT ' if exists else ''}NULL"

    def json_order(
        self, column: str, key: str, op: str, value: str | int | float, params: list[Any]
    ) -> str:
        path = _path(key)
        kind = "('integer', 'real')" if is_number(value) else "('text')"
        params.extend([path, value, path])
        return (
            f"ifnull(json_extract({column}, ?) {op} ?, 0) "
            f"AND ifnull(json_type({column}, ?), '') IN {kind}"
        )


SQLITE = SQLiteDialect()


class _Reader(sql.Reader):
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, text: str, params: Sequence[Any]) -> sqlite3.Cursor:
        return self.conn.execute(text, params)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        # WAL readers see the database as of their transaction's first read.
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")


# The store's entry points: functions of its connection.


def segment(conn: sqlite3.Connection, app_id: str, query: SegmentQuery) -> SegmentPage:
    return _Reader(conn).segment(app_id, query)


def funnel_events(
    conn: sqlite3.Connection, cache: ColumnCache | None, app_id: str, query: FunnelQuery
) -> AbstractContextManager[FunnelEvents]:
    return funnels.funnel_events(_Reader(conn), cache, app_id, query)


def user_profile(
    conn: sqlite3.Connection, app_id: str, user_id: str, include_bots: bool
) -> dict[str, Any] | None:
    return _Reader(conn).user_profile(app_id, user_id, include_bots)


def find_people(
    conn: sqlite3.Connection, app_id: str, text: str, include_bots: bool, limit: int
) -> list[str]:
    return _Reader(conn).find_people(app_id, text, include_bots, limit)


def events_page(conn: sqlite3.Connection, app_id: str, query: EventsQuery) -> EventsPage:
    return _Reader(conn).events_page(app_id, query)


def event_stats(conn: sqlite3.Connection, app_id: str, query: StatsQuery) -> dict[str, Any]:
    return _Reader(conn).event_stats(app_id, query)


def bot_reasons(
    conn: sqlite3.Connection, app_id: str, query: StatsQuery, person: str | None = None
) -> dict[str, int]:
    return _Reader(conn).bot_reasons(app_id, query, person)


def stream_position(conn: sqlite3.Connection) -> int:
    return _Reader(conn).stream_position()


def stream_events(
    conn: sqlite3.Connection,
    app_id: str,
    after: int,
    events: Sequence[str],
    include_bots: bool,
    limit: int,
) -> list[tuple[int, dict[str, Any]]]:
    return _Reader(conn).stream_events(app_id, after, events, include_bots, limit)


def analytics_overview(
    conn: sqlite3.Connection, cache: ColumnCache, app_id: str, query: AnalyticsQuery, now: int
) -> dict[str, Any]:
    reader = _Reader(conn)
    with reader.snapshot():
        return analytics.overview(SQLITE, reader.execute, cache, app_id, query, now)


def analytics_breakdown(
    conn: sqlite3.Connection, cache: ColumnCache, app_id: str, query: AnalyticsQuery, by: str
) -> dict[str, Any]:
    reader = _Reader(conn)
    with reader.snapshot():
        return analytics.breakdown(SQLITE, reader.execute, cache, app_id, query, by)
