"""The query API's read side on PostgreSQL (psycopg 3): its dialect, and what only
PostgreSQL does (a REPEATABLE READ READ ONLY transaction as the snapshot, funnel breakdown
values named as SQLite names them, the export through a server-side cursor). The queries
themselves are store/sql.py's, shared with SQLite, so both answer alike on the same events.

`seq` plays SQLite's rowid: the stream's position, the funnel rows' tiebreak and the
event pages'. Functions take a psycopg connection, in autocommit mode or not, with any
row factory; they leave it as they found it, except that a statement run outside a
transaction on a connection that is not in autocommit mode opens one, as psycopg does."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row

from collector.query.types import (
    AnalyticsQuery,
    EventsPage,
    EventsQuery,
    FunnelEvents,
    FunnelQuery,
    FunnelRow,
    Scalar,
    SegmentPage,
    SegmentQuery,
    StatsQuery,
    is_number,
)
from collector.store import analytics, core, funnels, sql
from collector.store.columns import ColumnCache

EXPORT_BATCH = 2_000  # rows a server-side cursor fetches at a time


class PostgresDialect(sql.Dialect):
    mark = "%s"
    true = "true"
    false = "false"
    rowid = "seq"
    # The database's own collation may be a language's (en_US orders "a" < "B" < "b");
    # "C" compares bytes, and UTF-8's byte order is code point order.
    collate = ' COLLATE "C"'
    # Integer division, as SQLite's ts / 1000 (whole seconds, then the date).
    day = "to_char(to_timestamp(ts / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    # jsonb equality is typed ('"1"' is not '1', 'true' is not '1', 'null' only null)
    # and numeric for numbers ('1' = '1.0'); a missing key gives NULL, hence coalesce.
    # Values go in as JSON text: a float's shortest repr is exactly the number stored.
    def json_eq(self, column: str, key: str, value: Scalar, params: list[Any]) -> str:
        params.extend([key, core.json_text(value)])
        return f"coalesce({column} -> %s = %s::jsonb, false)"

    def json_text(self, column: str, key: str, params: list[Any]) -> str:
        params.append(key)
        return f"{column} ->> %s"

    def json_raw(self, column: str, key: str, params: list[Any]) -> str:
        params.append(key)
        return f"({column} -> %s)::text"

    def json_in(self, column: str, key: str, values: Sequence[Scalar], params: list[Any]) -> str:
        params.extend([key, [core.json_text(v) for v in values]])
        return f"coalesce({column} -> %s = ANY(%s::jsonb[]), false)"

    def json_exists(self, column: str, key: str, exists: bool, params: list[Any]) -> str:
        params.append(key)
        return f"{column} -> %s IS {'NOT ' if exists else ''}NULL"

    def json_order(
        self, column: str, key: str, op: str, value: str | int | float, params: list[Any]
    ) -> str:
        if is_number(value):
            # jsonb orders numbers by value (and across types too, by type: the type
            # test keeps a string out). Never a cast, which would fail on "abc".
            params.extend([key, key, core.json_text(value)])
            return (
                f"coalesce(jsonb_typeof({column} -> %s) = 'number' "
                f"AND {column} -> %s {op} %s::jsonb, false)"
            )
        # jsonb orders strings by the database's collation; ->> and "C" by code point.
        params.extend([key, key, value])
        return (
            f"coalesce(jsonb_typeof({column} -> %s) = 'string' "
            f"AND ({column} ->> %s){self.collate} {op} %s, false)"
        )


POSTGRES = PostgresDialect()


def sqlite_json(text: str | None) -> str | None:
    """jsonb's text of a value → the JSON text SQLite's `->` gives for the same stored
    value: orjson's, as the collector wrote it. jsonb prints numbers in plain notation
    (1e-7 as 0.0000001, 1e+20 as 100000000000000000000) and objects with spaces; decoded
    and encoded again by orjson they come back as written, an integer beyond 64 bits
    being a float (orjson writes no such integer). What cannot come back: an object's key
    order (jsonb sorts keys), and a float with a whole value from 1e16 up to 2**64, which
    jsonb cannot tell from an integer."""
    return None if text is None else orjson.dumps(orjson.loads(text)).decode()


class _Reader(sql.Reader):
    dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, text: str, params: Sequence[Any]) -> psycopg.Cursor[tuple[Any, ...]]:
        # Tuple rows whatever the connection's row factory: the queries read by position.
        return self.conn.cursor(row_factory=tuple_row).execute(text, params)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        if self.conn.info.transaction_status != TransactionStatus.IDLE:
            yield
            return
        with self.conn.transaction():
            # Before any query of the transaction: every statement then sees the same
            # snapshot, which READ COMMITTED (the default) would take anew each time.
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def count_and_page(
        self, sql: str, params: list[Any], query: SegmentQuery
    ) -> tuple[int, list[str]]:
        # The page is sorted by code point, which the persons index (in the database's
        # collation) does not give: a second statement would evaluate the segment again
        # to sort it, so one statement counts the matches as it sorts them.
        after = "" if query.after is None else 'WHERE person COLLATE "C" > %s'
        rows = self.execute(
            f"SELECT person, total FROM (SELECT person, count(*) OVER () AS total "
            f'FROM ({sql}) AS matched) AS counted {after} ORDER BY person COLLATE "C" LIMIT %s',
            [*params, *([] if query.after is None else [query.after]), query.limit + 1],
        ).fetchall()
        if rows:
            return int(rows[0][1]), [r[0] for r in rows]
        return super().count_and_page(sql, params, query)  # past the last page: count alone

    def funnel_rows(self, app_id: str, query: FunnelQuery) -> Iterable[FunnelRow]:
        rows = super().funnel_rows(app_id, query)
        if query.breakdown is None:
            return rows
        named = _sqlite_names()
        return ((person, ts, mask, named(value)) for person, ts, mask, value in rows)

    def funnel_starts(self, app_id: str, query: FunnelQuery) -> list[sql.FunnelStart]:
        named = _sqlite_names()
        return [(p, ts, seq, named(v)) for p, ts, seq, v in super().funnel_starts(app_id, query)]


def _sqlite_names() -> Callable[[str | None], str | None]:
    """Breakdown values as SQLite names them; few distinct ones, each converted once."""
    names: dict[str | None, str | None] = {None: None}

    def named(text: str | None) -> str | None:
        name = names.get(text, names)
        if name is names:
            name = names[text] = sqlite_json(text)
        return name  # type: ignore[return-value]

    return named


def segment(conn: psycopg.Connection[Any], app_id: str, query: SegmentQuery) -> SegmentPage:
    return _Reader(conn).segment(app_id, query)


def funnel_events(
    conn: psycopg.Connection[Any], cache: ColumnCache | None, app_id: str, query: FunnelQuery
) -> AbstractContextManager[FunnelEvents]:
    return funnels.funnel_events(_Reader(conn), cache, app_id, query)


def user_profile(
    conn: psycopg.Connection[Any], app_id: str, user_id: str, include_bots: bool
) -> dict[str, Any] | None:
    return _Reader(conn).user_profile(app_id, user_id, include_bots)


def find_people(
    conn: psycopg.Connection[Any], app_id: str, text: str, include_bots: bool, limit: int
) -> list[str]:
    return _Reader(conn).find_people(app_id, text, include_bots, limit)


def events_page(conn: psycopg.Connection[Any], app_id: str, query: EventsQuery) -> EventsPage:
    return _Reader(conn).events_page(app_id, query)


def event_stats(conn: psycopg.Connection[Any], app_id: str, query: StatsQuery) -> dict[str, Any]:
    return _Reader(conn).event_stats(app_id, query)


def bot_reasons(
    conn: psycopg.Connection[Any], app_id: str, query: StatsQuery, person: str | None = None
) -> dict[str, int]:
    return _Reader(conn).bot_reasons(app_id, query, person)


def stream_position(conn: psycopg.Connection[Any]) -> int:
    return _Reader(conn).stream_position()


def stream_events(
    conn: psycopg.Connection[Any],
    app_id: str,
    after: int,
    events: Sequence[str],
    include_bots: bool,
    limit: int,
) -> list[tuple[int, dict[str, Any]]]:
    return _Reader(conn).stream_events(app_id, after, events, include_bots, limit)


_cursor_names = itertools.count(1)  # a server-side cursor is named, uniquely per session


def export_rows(
    conn: psycopg.Connection[Any],
    app_id: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every stored event of the app in [since, until), bots too, ordered by (ts, seq),
    as `core.event_dict` gives it. One snapshot, read through a server-side cursor: a
    large export holds a batch in memory, not the app. The snapshot's transaction stays
    open until the iteration ends (or the iterator is closed)."""
    text, params = sql.export_sql(POSTGRES, app_id, since_ms, until_ms)
    with (
        _Reader(conn).snapshot(),
        conn.cursor(name=f"export_{next(_cursor_names)}", row_factory=dict_row) as cur,
    ):
        cur.itersize = EXPORT_BATCH
        cur.execute(text, params)
        for row in cur:
            yield core.event_dict(row)


def analytics_overview(
    conn: psycopg.Connection[Any], cache: ColumnCache, app_id: str, query: AnalyticsQuery, now: int
) -> dict[str, Any]:
    reader = _Reader(conn)
    with reader.snapshot():
        return analytics.overview(POSTGRES, reader.execute, cache, app_id, query, now)


def analytics_breakdown(
    conn: psycopg.Connection[Any], cache: ColumnCache, app_id: str, query: AnalyticsQuery, by: str
) -> dict[str, Any]:
    reader = _Reader(conn)
    with reader.snapshot():
        return analytics.breakdown(POSTGRES, reader.execute, cache, app_id, query, by)
