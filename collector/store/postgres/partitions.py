"""Monthly partitions of `events` (UTC months of the event time `ts`), made on demand.

A month's partition is `events_YYYY_MM`; months more than `HISTORY_MONTHS` before the
current one, like any time no month of ours covers, go to `events_default`. Without that
floor a client sending made-up old timestamps could make a partition for every month
since 1970; a month that old never gets a partition later, so the default partition
never holds rows a new partition would have to take over (PostgreSQL refuses to create
a partition whose rows sit in the default one).

Making a partition locks the whole `events` table (ACCESS EXCLUSIVE) until the
transaction ends: the indexer makes them in a short transaction of their own, not in
the one that inserts (see primitives.index_pending), and the current and next months
are made at migration, so most months exist before their first event."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

Month = tuple[int, int]  # (year, month)

HISTORY_MONTHS = 120
_NAME = re.compile(r"^events_(\d{4})_(\d{2})$")


def month_of(ts_ms: int) -> Month:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.year, moment.month


def next_month(month: Month) -> Month:
    year, m = month
    return (year + 1, 1) if m == 12 else (year, m + 1)


def bounds(month: Month) -> tuple[int, int]:
    """[start, end) of the month in epoch ms."""
    start = datetime(*month, 1, tzinfo=UTC)
    end = datetime(*next_month(month), 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def name(month: Month) -> str:
    return f"events_{month[0]:04d}_{month[1]:02d}"


def parse_name(relname: str) -> Month | None:
    found = _NAME.match(relname)
    return (int(found[1]), int(found[2])) if found else None


def current_month() -> Month:
    return month_of(int(time.time() * 1000))


def _oldest() -> Month:
    year, month = current_month()
    index = year * 12 + month - 1 - HISTORY_MONTHS
    return index // 12, index % 12 + 1


def wanted(timestamps: Iterable[int]) -> set[Month]:
    """The months that should have a partition for events at these times."""
    oldest = _oldest()
    months = set()
    for ts in timestamps:
        try:
            month = month_of(ts)
        except (OverflowError, OSError, ValueError):  # outside datetime's years
            continue
        if month >= oldest and month[0] < 9999:
            months.add(month)
    return months


def missing(conn: psycopg.Connection[Any], months: Iterable[Month]) -> list[Month]:
    wanted_names = {name(m): m for m in months}
    if not wanted_names:
        return []
    rows = conn.execute(
        "SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL",
        (sorted(wanted_names),),
    ).fetchall()
    return sorted(wanted_names[r[0]] for r in rows)


def create(conn: psycopg.Connection[Any], months: Iterable[Month]) -> None:
    """Make the months' partitions, in the caller's transaction. A month whose rows are
    already in the default partition keeps them there (see the module's docstring)."""
    for month in sorted(set(months)):
        start, end = bounds(month)
        statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})"
        ).format(sql.Identifier(name(month)), sql.Literal(start), sql.Literal(end))
        try:
            with conn.transaction():  # a savepoint: one refusal leaves the rest standing
                conn.execute(statement)
        except psycopg.errors.CheckViolation:
            pass


def listed(conn: psycopg.Connection[Any]) -> list[tuple[str, Month]]:
    """The monthly partitions that exist, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    found = [(r[0], parse_name(r[0])) for r in rows]
    return sorted(((n, m) for n, m in found if m is not None), key=lambda item: item[1])
