"""The read side for the query API: segments compiled to SQL, funnel rows, user
profiles, event pages and daily stats. Functions of a sqlite3 connection; every one is
scoped to one app and groups by `person`, the resolved identity, so what a visitor did
before logging in counts for the user.

Behavioural conditions read person_event_stats (one row per person, event and bot flag)
where they can; a property filter or a count window needs the events themselves."""

from __future__ import annotations

import bisect
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from collector.query.types import (
    Condition,
    EventCondition,
    EventsPage,
    EventsQuery,
    FunnelEvents,
    FunnelQuery,
    FunnelRow,
    Group,
    Not,
    PropertyTest,
    SegmentPage,
    SegmentQuery,
    StatsQuery,
    TraitCondition,
    is_number,
)
from collector.store import core
from collector.timeutil import iso

_CHUNK = 500  # bound on host parameters in one IN (...)


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction, so a count and the page it describes agree even while the
    writer commits (WAL readers see one snapshot)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# Property tests → SQL ------------------------------------------------------------------


def _path(key: str) -> str:
    return f'$."{key}"'


def _eq_sql(column: str, key: str, value: Any, params: list[Any]) -> str:
    """Typed equality that is never NULL (so NOT works). The cheap json_extract comes
    first: SQLite skips the json_type check when it already fails."""
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
        f"ifnull(json_extract({column}, ?) = ?, 0) AND ifnull(json_type({column}, ?), '') IN {kind}"
    )


def _in_sql(column: str, key: str, values: Sequence[Any], params: list[Any]) -> str:
    """Typed membership in a few flat terms (one per JSON type), whatever the list's
    length: an OR per value would nest past SQLite's expression depth limit."""
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
                f"(ifnull(json_extract({column}, ?) IN ({_marks(len(group))}), 0) "
                f"AND ifnull(json_type({column}, ?), '') IN {kinds})"
            )
    if types:
        params.extend([path, *types])
        terms.append(f"ifnull(json_type({column}, ?), '') IN ({_marks(len(types))})")
    return " OR ".join(terms) or "0"


_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def test_sql(column: str, test: PropertyTest, params: list[Any]) -> str:
    """A boolean SQL expression (never NULL) for one property test on a JSON column."""
    if test.op == "eq":
        return f"({_eq_sql(column, test.key, test.value, params)})"
    if test.op == "neq":
        return f"(NOT ({_eq_sql(column, test.key, test.value, params)}))"
    if test.op in ("in", "not_in"):
        found = _in_sql(column, test.key, test.value, params)
        return f"({found})" if test.op == "in" else f"(NOT ({found}))"
    path = _path(test.key)
    if test.op == "exists":
        params.append(path)
        return f"(json_type({column}, ?) IS {'NOT ' if test.value else ''}NULL)"
    kind = "('integer', 'real')" if is_number(test.value) else "('text')"
    params.extend([path, test.value, path])
    return (
        f"(ifnull(json_extract({column}, ?) {_ORDER[test.op]} ?, 0) "
        f"AND ifnull(json_type({column}, ?), '') IN {kind})"
    )


def _where_sql(column: str, tests: Sequence[PropertyTest], params: list[Any]) -> str:
    return "".join(f" AND {test_sql(column, t, params)}" for t in tests)


# Segments ------------------------------------------------------------------------------


# One event's rows, by the index that holds them together. Without statistics (nobody
# runs ANALYZE) the planner prefers walking the whole app in person order.
_BY_EVENT = "events INDEXED BY events_event_ts"


class _Compiler:
    """A rules tree → one boolean SQL expression over `person`. Parameters are appended
    in the order their placeholders appear in the text."""

    def __init__(self, app_id: str, include_bots: bool, as_of: int) -> None:
        self.app_id = app_id
        self.include_bots = include_bots
        self.as_of = as_of
        self.params: list[Any] = []

    def compile(self, cond: Condition) -> str:
        if isinstance(cond, Group):
            if not cond.conditions:
                return "1" if cond.match == "all" else "0"
            joiner = " AND " if cond.match == "all" else " OR "
            return "(" + joiner.join(self.compile(c) for c in cond.conditions) + ")"
        if isinstance(cond, Not):
            return f"(NOT {self.compile(cond.condition)})"
        if isinstance(cond, TraitCondition):
            return self._trait(cond)
        return self._event(cond)

    def _trait(self, cond: TraitCondition) -> str:
        # A person without a users row (anonymous, or traits never set) has no traits:
        # when the test holds for an empty set of traits (neq, not_in, exists: false)
        # such people are in, so the test is written as "not among those who fail".
        empty_ok = cond.matches({})
        self.params.append(self.app_id)
        tests = " AND ".join(test_sql("traits", t, self.params) for t in cond.tests)
        if empty_ok:
            return f"person NOT IN (SELECT user_id FROM users WHERE app_id = ? AND NOT ({tests}))"
        return f"person IN (SELECT user_id FROM users WHERE app_id = ? AND {tests})"

    def _event(self, cond: EventCondition) -> str:
        bots = "" if self.include_bots else " AND is_bot = 0"
        cutoff = None if cond.within_ms is None else self.as_of - cond.within_ms
        p = self.params
        p.extend([self.app_id, cond.event])

        if cond.kind == "count":
            zero_ok = cond.count_ok(0)
            if cond.where or cutoff is not None:
                sql = f"SELECT person FROM {_BY_EVENT} WHERE app_id = ? AND event = ?{bots}"
                if cutoff is not None:
                    sql += " AND ts >= ?"
                    p.append(cutoff)
                sql += _where_sql("properties", cond.where, p)
                sql += " GROUP BY person HAVING " + self._count_sql("COUNT(*)", cond, zero_ok)
            elif self.include_bots:
                sql = "SELECT person FROM person_event_stats WHERE app_id = ? AND event = ?"
                sql += " GROUP BY person HAVING " + self._count_sql("SUM(n)", cond, zero_ok)
            else:
                sql = "SELECT person FROM person_event_stats WHERE app_id = ? AND event = ?"
                sql += " AND is_bot = 0 AND " + self._count_sql("n", cond, zero_ok)
            # A count that 0 satisfies (lt 3, eq 0) includes people who never did it:
            # "everyone except those whose (non-zero) count fails".
            return f"person {'NOT IN' if zero_ok else 'IN'} ({sql})"

        if cond.kind == "first_done_within":
            assert cutoff is not None
            if cond.where:
                sql = f"SELECT person FROM {_BY_EVENT} WHERE app_id = ? AND event = ?{bots}"
                sql += _where_sql("properties", cond.where, p)
                sql += " GROUP BY person HAVING MIN(ts) >= ?"
            elif self.include_bots:
                sql = "SELECT person FROM person_event_stats WHERE app_id = ? AND event = ?"
                sql += " GROUP BY person HAVING MIN(first_ts) >= ?"
            else:
                sql = "SELECT person FROM person_event_stats WHERE app_id = ? AND event = ?"
                sql += " AND is_bot = 0 AND first_ts >= ?"
            p.append(cutoff)
            return f"person IN ({sql})"

        # has_done, has_not_done, last_done_within: did it at least once (in the window).
        if cond.where:
            sql = f"SELECT person FROM {_BY_EVENT} WHERE app_id = ? AND event = ?{bots}"
            if cutoff is not None:
                sql += " AND ts >= ?"
                p.append(cutoff)
            sql += _where_sql("properties", cond.where, p)
        else:
            sql = f"SELECT person FROM person_event_stats WHERE app_id = ? AND event = ?{bots}"
            if cutoff is not None:
                sql += " AND last_ts >= ?"
                p.append(cutoff)
        return f"person {'NOT IN' if cond.kind == 'has_not_done' else 'IN'} ({sql})"

    def _count_sql(self, expr: str, cond: EventCondition, negate: bool) -> str:
        parts = []
        for op, n in cond.compare:
            parts.append(f"{expr} {'=' if op == 'eq' else _ORDER[op]} ?")
            self.params.append(n)
        test = " AND ".join(parts)
        return f"NOT ({test})" if negate else f"({test})"


def segment_sql(app_id: str, query: SegmentQuery) -> tuple[str, list[Any]]:
    """Every matching person, in person order.

    Who is in scope: everyone with at least one event in the app (bots' events left out
    unless include_bots, so a person seen only as a bot is out), plus identified users
    who have no events at all (has_not_done and trait conditions can find them)."""
    bots = "" if query.include_bots else " AND is_bot = 0"
    compiler = _Compiler(app_id, query.include_bots, query.as_of)
    condition = compiler.compile(query.rules)
    sql = (
        "WITH scope(person) AS ("
        f"SELECT DISTINCT person FROM person_event_stats WHERE app_id = ?{bots} "
        "UNION ALL SELECT user_id FROM users WHERE app_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM person_event_stats s WHERE s.app_id = users.app_id "
        "AND s.person = users.user_id)) "
        f"SELECT person FROM scope WHERE {condition} ORDER BY person"
    )
    return sql, [app_id, app_id, *compiler.params]


def segment(conn: sqlite3.Connection, app_id: str, query: SegmentQuery) -> SegmentPage:
    sql, params = segment_sql(app_id, query)
    with _snapshot(conn):
        persons = [row[0] for row in conn.execute(sql, params)]
        start = bisect.bisect_right(persons, query.after) if query.after is not None else 0
        page = persons[start : start + query.limit]
        users = describe_persons(conn, app_id, page, query.include_bots)
    more = start + query.limit < len(persons)
    return SegmentPage(len(persons), users, page[-1] if more and page else None)


def describe_persons(
    conn: sqlite3.Connection, app_id: str, persons: Sequence[str], include_bots: bool
) -> list[dict[str, Any]]:
    """Id, traits, first and last seen for each person, in the given order. Seen times
    take the events of linked anonymous ids into account, not only the user's own."""
    bots = "" if include_bots else " AND is_bot = 0"
    users: dict[str, tuple[str, int, int]] = {}
    seen: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(persons):
        for user_id, traits, first, last in conn.execute(
            "SELECT user_id, traits, first_seen, last_seen FROM users "
            f"WHERE app_id = ? AND user_id IN ({_marks(len(chunk))})",
            (app_id, *chunk),
        ):
            users[user_id] = (traits, first, last)
        for person, first, last in conn.execute(
            "SELECT person, MIN(first_ts), MAX(last_ts) FROM person_event_stats "
            f"WHERE app_id = ? AND person IN ({_marks(len(chunk))}){bots} GROUP BY person",
            (app_id, *chunk),
        ):
            seen[person] = (first, last)
    out = []
    for person in persons:
        user_id, anonymous_id = core.person_fields(person)
        row = users.get(person) if user_id is not None else None
        spans = [span for span in (row[1:] if row else None, seen.get(person)) if span]
        out.append(
            {
                "id": user_id,
                "anonymous_id": anonymous_id,
                "traits": orjson.loads(row[0]) if row else {},
                "first_seen": iso(min(s[0] for s in spans)) if spans else None,
                "last_seen": iso(max(s[1] for s in spans)) if spans else None,
            }
        )
    return out


# Funnels -------------------------------------------------------------------------------


def funnel_rows(conn: sqlite3.Connection, app_id: str, query: FunnelQuery) -> Iterator[FunnelRow]:
    """Events matching any step, by (person, time, insertion order); the mask says which
    steps each matches (one event can match several). Without property filters this
    reads the (event, ts, person, is_bot) index alone."""
    params: list[Any] = []
    masks = []
    for k, step in enumerate(query.steps):
        params.append(step.event)
        where = _where_sql("properties", step.where, params)
        masks.append(f"(CASE WHEN event = ?{where} THEN {1 << k} ELSE 0 END)")
    # The ref is only read for a breakdown; NULL spares creating 100,000s of ints.
    ref = "rowid" if query.breakdown is not None else "NULL"
    events = sorted({s.event for s in query.steps})
    sql = (
        f"SELECT person, ts, {' | '.join(masks)} AS mask, {ref} FROM {_BY_EVENT} "
        f"WHERE app_id = ? AND event IN ({_marks(len(events))})"
    )
    params += [app_id, *events]
    if not query.include_bots:
        sql += " AND is_bot = 0"
    if query.since is not None:
        sql += " AND ts >= ?"
        params.append(query.since)
    if query.until is not None:
        # Later steps may land after `until`, as long as they are within the window.
        sql += " AND ts <= ?"
        params.append(query.until + query.window_ms)
    sql += " ORDER BY person, ts, rowid"
    rows: Iterator[FunnelRow] = conn.execute(sql, params)
    if any(step.where for step in query.steps):
        # Only property filters can leave an event matching no step.
        return (row for row in rows if row[2])
    return rows


def breakdown_values(
    conn: sqlite3.Connection, app_id: str, key: str, refs: list[int]
) -> dict[int, str | None]:
    """The property (JSON text) of the given events. Read in rowid order, which walks
    the table forwards instead of jumping around it: about twice as fast."""
    rows = conn.execute(
        "SELECT rowid, properties -> ? FROM events "
        # `+app_id`: a check, not an index to use (that would walk the whole app).
        "WHERE rowid IN (SELECT value FROM json_each(?)) AND +app_id = ?",
        (f'$."{key}"', orjson.dumps(sorted(refs)).decode(), app_id),
    )
    return dict(rows)


@contextlib.contextmanager
def funnel_events(
    conn: sqlite3.Connection, app_id: str, query: FunnelQuery
) -> Iterator[FunnelEvents]:
    with _snapshot(conn):
        key = query.breakdown
        yield FunnelEvents(
            funnel_rows(conn, app_id, query),
            None if key is None else lambda refs: breakdown_values(conn, app_id, key, refs),
        )


# Users, events, stats -------------------------------------------------------------------


def user_profile(
    conn: sqlite3.Connection, app_id: str, user_id: str, include_bots: bool
) -> dict[str, Any] | None:
    """A user (or an `anon:` person): traits, first/last seen, event counts by name and
    the anonymous ids linked to them. None if the app has never seen them."""
    bots = "" if include_bots else " AND is_bot = 0"
    with _snapshot(conn):
        known = (
            conn.execute(
                "SELECT 1 FROM users WHERE app_id = ? AND user_id = ?", (app_id, user_id)
            ).fetchone()
            is not None
        )
        # The users table holds identified users (identify calls, events with traits); a
        # user or anonymous person seen only through events is known by their events.
        if (
            not known
            and not conn.execute(
                "SELECT 1 FROM person_event_stats WHERE app_id = ? AND person = ?",
                (app_id, user_id),
            ).fetchone()
        ):
            return None
        counts = {
            event: int(n)
            for event, n in conn.execute(
                # Without statistics (no ANALYZE) the planner would scan the whole app.
                "SELECT event, SUM(n) FROM person_event_stats INDEXED BY person_event_stats_person "
                f"WHERE app_id = ? AND person = ?{bots} GROUP BY event ORDER BY event",
                (app_id, user_id),
            )
        }
        (profile,) = describe_persons(conn, app_id, [user_id], include_bots)
        if known:
            profile["anonymous_ids"] = [
                row[0]
                for row in conn.execute(
                    "SELECT anonymous_id FROM identities WHERE app_id = ? AND user_id = ? "
                    "ORDER BY linked_at, anonymous_id",
                    (app_id, user_id),
                )
            ]
        else:
            profile["anonymous_ids"] = [profile["anonymous_id"]]
        profile["event_counts"] = counts
        profile["events"] = sum(counts.values())
    return profile


def events_page(conn: sqlite3.Connection, app_id: str, query: EventsQuery) -> EventsPage:
    where, params = _event_filter(
        app_id, query.events, query.since, query.until, query.include_bots
    )
    if query.user is not None:
        where.append("person = ?")
        params.append(query.user)
    if query.anonymous_id is not None:
        where.append("anonymous_id = ?")
        params.append(query.anonymous_id)
    desc = query.order == "desc"
    if query.after is not None:
        where.append(f"(ts, rowid) {'<' if desc else '>'} (?, ?)")
        params.extend(query.after)
    direction = "DESC" if desc else "ASC"
    # One person's (or one event's) events are few next to the app's: read them by
    # that index and sort, rather than walk the whole app in time order.
    index = ""
    if query.user is not None:
        index = "INDEXED BY events_person "
    elif len(query.events) == 1:
        index = "INDEXED BY events_event_ts "
    cur = conn.execute(
        f"SELECT rowid AS _rowid, * FROM events {index}WHERE {' AND '.join(where)} "
        f"ORDER BY ts {direction}, rowid {direction} LIMIT ?",
        (*params, query.limit + 1),
    )
    rows = _dict_rows(cur)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    out = []
    for row in rows:
        event = core.event_dict(row)
        event["is_bot"] = bool(row["is_bot"])
        out.append(event)
    last = (rows[-1]["ts"], rows[-1]["_rowid"]) if more and rows else None
    return EventsPage(out, last)


def _event_filter(
    app_id: str,
    events: Sequence[str],
    since: int | None,
    until: int | None,
    include_bots: bool,
) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters shared by the event list and the daily stats."""
    where = ["app_id = ?"]
    params: list[Any] = [app_id]
    if events:
        where.append(f"event IN ({_marks(len(events))})")
        params.extend(events)
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    if not include_bots:
        where.append("is_bot = 0")
    return where, params


def event_stats(conn: sqlite3.Connection, app_id: str, query: StatsQuery) -> dict[str, Any]:
    """Events and distinct people per event per UTC day."""
    where, params = _event_filter(
        app_id, query.events, query.since, query.until, query.include_bots
    )
    days = []
    totals: dict[str, int] = {}
    for day, event, count, users in conn.execute(
        "SELECT date(ts / 1000, 'unixepoch') AS day, event, COUNT(*), COUNT(DISTINCT person) "
        f"FROM events WHERE {' AND '.join(where)} GROUP BY day, event ORDER BY day, event",
        params,
    ):
        days.append({"day": day, "event": event, "count": count, "users": users})
        totals[event] = totals.get(event, 0) + count
    return {"days": days, "totals": dict(sorted(totals.items()))}


# Live stream -----------------------------------------------------------------------------


def stream_position(conn: sqlite3.Connection) -> int:
    """The newest event's rowid: a stream that starts now shows what comes after it."""
    row = conn.execute("SELECT max(rowid) FROM events").fetchone()
    return int(row[0] or 0)


def stream_events(
    conn: sqlite3.Connection,
    app_id: str,
    after: int,
    events: Sequence[str],
    include_bots: bool,
    limit: int,
) -> list[tuple[int, dict[str, Any]]]:
    """Events stored after rowid `after`, oldest first. Write transactions are serialised
    (one writer at a time across processes), so rowids grow in commit order: polling
    "rowid > last seen" misses nothing any worker commits."""
    where, params = _event_filter(app_id, events, None, None, include_bots)
    cur = conn.execute(
        f"SELECT rowid AS _rowid, * FROM events WHERE rowid > ? AND {' AND '.join(where)} "
        "ORDER BY rowid LIMIT ?",
        (after, *params, limit),
    )
    return [(row["_rowid"], core.event_dict(row)) for row in _dict_rows(cur)]


def _dict_rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts keyed by column name."""
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur]
