"""The read side of the query API as SQL, written once for every backend: segments
compiled to one boolean expression over `person`, funnel rows and their step masks,
profiles, event pages, daily stats and the live stream.

A backend gives a `Dialect` (how its SQL spells placeholders, typed JSON property tests,
index hints, day buckets, the commit-order column and text order) and a `Reader` (how it
runs a statement, holds a read snapshot and reads a funnel's breakdown values). Every
query is scoped to one app and groups by `person`, the resolved identity, so what a
visitor did before logging in counts for the user.

Behavioural conditions read person_event_stats (one row per person, event and bot flag)
where they can; a property filter or a count window needs the events themselves."""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol, TypeAlias

import orjson

from collector.query.types import (
    Condition,
    EventCondition,
    EventsPage,
    EventsQuery,
    FunnelQuery,
    FunnelRow,
    Group,
    Not,
    PropertyTest,
    Scalar,
    SegmentPage,
    SegmentQuery,
    StatsQuery,
    TraitCondition,
)
from collector.store import core
from collector.timeutil import iso

CHUNK = 500  # bound on host parameters in one IN (...)
# A funnel's first-step event read for the columns: (person, ts, commit order, value).
FunnelStart: TypeAlias = tuple[str, int, int, str | None]
ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class Dialect(ABC):
    """What the engines spell differently. Each JSON test is a boolean expression that is
    never NULL (so NOT works) on one key of a JSON column, typed as
    `PropertyTest.matches` is: the string "1" is not the number 1, and `true` is not 1.
    Parameters are appended in the order their placeholders appear in the text."""

    mark: ClassVar[str]  # a parameter's placeholder
    true: ClassVar[str]
    false: ClassVar[str]
    # The events' commit order: the stream's position, a funnel row's ref, the event
    # pages' tiebreak after ts.
    rowid: ClassVar[str]
    # Follows a text expression that is ordered or compared: code point order, which is
    # SQLite's binary order and Python's (segment pages are cut by bisecting in Python).
    collate: ClassVar[str]
    day: ClassVar[str]  # the UTC day, "YYYY-MM-DD", of `ts` (epoch ms)

    def marks(self, n: int) -> str:
        return ",".join([self.mark] * n)

    def table(self, name: str, index: str | None) -> str:
        """`name`, read by `index` where the engine takes index hints."""
        return name

    @abstractmethod
    def json_eq(self, column: str, key: str, value: Scalar, params: list[Any]) -> str: ...

    @abstractmethod
    def json_text(self, column: str, key: str, params: list[Any]) -> str:
        """The key's value as text (NULL when missing or null), to group by."""

    @abstractmethod
    def json_raw(self, column: str, key: str, params: list[Any]) -> str:
        """The key's value as JSON text, as SQLite's `->` gives it (NULL when missing):
        what funnel breakdown buckets are named after. A backend whose text differs
        converts it in `Reader.funnel_rows`."""

    @abstractmethod
    def json_in(self, column: str, key: str, values: Sequence[Scalar], params: list[Any]) -> str:
        """Membership in `values`, which holds at least one."""

    @abstractmethod
    def json_exists(self, column: str, key: str, exists: bool, params: list[Any]) -> str:
        """Whether the key is present (or absent); a present null counts as present."""

    @abstractmethod
    def json_order(
        self, column: str, key: str, op: str, value: str | int | float, params: list[Any]
    ) -> str:
        """The property `op` (<, <=, >, >=) `value`: numbers with numbers, strings with
        strings in code point order; false for any other pair and for a missing key."""


class Cursor(Protocol):
    @property
    def description(self) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


# Property tests → SQL ------------------------------------------------------------------


def test_sql(d: Dialect, column: str, test: PropertyTest, params: list[Any]) -> str:
    """A boolean SQL expression (never NULL) for one property test on a JSON column."""
    if test.op == "eq":
        return f"({d.json_eq(column, test.key, test.value, params)})"
    if test.op == "neq":
        return f"(NOT ({d.json_eq(column, test.key, test.value, params)}))"
    if test.op in ("in", "not_in"):
        found = d.json_in(column, test.key, test.value, params) if test.value else d.false
        return f"({found})" if test.op == "in" else f"(NOT ({found}))"
    if test.op == "exists":
        return f"({d.json_exists(column, test.key, test.value, params)})"
    return f"({d.json_order(column, test.key, ORDER[test.op], test.value, params)})"


def where_sql(d: Dialect, column: str, tests: Sequence[PropertyTest], params: list[Any]) -> str:
    return "".join(f" AND {test_sql(d, column, t, params)}" for t in tests)


# Segments ------------------------------------------------------------------------------


class _Compiler:
    """A rules tree → one boolean SQL expression over `person`. Parameters are appended
    in the order their placeholders appear in the text."""

    def __init__(self, d: Dialect, app_id: str, include_bots: bool, as_of: int) -> None:
        self.d = d
        self.app_id = app_id
        self.include_bots = include_bots
        self.as_of = as_of
        self.params: list[Any] = []
        # One event's rows, by the index that holds them together. Without statistics
        # (nobody runs ANALYZE on SQLite) the planner prefers walking the whole app in
        # person order.
        self.by_event = d.table("events", "events_event_ts")

    def compile(self, cond: Condition) -> str:
        if isinstance(cond, Group):
            if not cond.conditions:
                return self.d.true if cond.match == "all" else self.d.false
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
        m = self.d.mark
        self.params.append(self.app_id)
        tests = " AND ".join(test_sql(self.d, "traits", t, self.params) for t in cond.tests)
        if empty_ok:
            return f"person NOT IN (SELECT user_id FROM users WHERE app_id = {m} AND NOT ({tests}))"
        return f"person IN (SELECT user_id FROM users WHERE app_id = {m} AND {tests})"

    def _event(self, cond: EventCondition) -> str:
        sql = self._persons(cond)
        return f"person {'NOT IN' if negated(cond) else 'IN'} ({sql})"

    def candidates(self, cond: Condition) -> str:
        """A query of persons, all in scope, that holds everyone `cond` matches; only for
        a tree that `positive` says has one. Reading it instead of the whole scope
        spares walking every person of the app when the condition names a few."""
        if isinstance(cond, Group):
            if cond.match == "all":
                return self.candidates(next(c for c in cond.conditions if positive(c)))
            return " UNION ".join(self.candidates(c) for c in cond.conditions)
        assert isinstance(cond, EventCondition)
        return self._persons(cond)

    def _persons(self, cond: EventCondition) -> str:
        """The persons an event condition is about: those it matches, or (when it is
        `negated`) those it excludes."""
        d, m, p = self.d, self.d.mark, self.params
        bots = "" if self.include_bots else " AND is_bot = 0"
        cutoff = None if cond.within_ms is None else self.as_of - cond.within_ms
        events = f"SELECT person FROM {self.by_event} WHERE app_id = {m} AND event = {m}{bots}"
        stats = f"SELECT person FROM person_event_stats WHERE app_id = {m} AND event = {m}"
        p.extend([self.app_id, cond.event])

        if cond.kind == "count":
            zero_ok = cond.count_ok(0)
            if cond.where or cutoff is not None:
                sql = events
                if cutoff is not None:
                    sql += f" AND ts >= {m}"
                    p.append(cutoff)
                sql += where_sql(d, "properties", cond.where, p)
                sql += " GROUP BY person HAVING " + self._count_sql("COUNT(*)", cond, zero_ok)
            elif self.include_bots:
                sql = stats + " GROUP BY person HAVING " + self._count_sql("SUM(n)", cond, zero_ok)
            else:
                sql = stats + " AND is_bot = 0 AND " + self._count_sql("n", cond, zero_ok)
            return sql

        if cond.kind == "first_done_within":
            assert cutoff is not None
            if cond.where:
                sql = events + where_sql(d, "properties", cond.where, p)
                sql += f" GROUP BY person HAVING MIN(ts) >= {m}"
            elif self.include_bots:
                sql = stats + f" GROUP BY person HAVING MIN(first_ts) >= {m}"
            else:
                sql = stats + f" AND is_bot = 0 AND first_ts >= {m}"
            p.append(cutoff)
            return sql

        # has_done, has_not_done, last_done_within: did it at least once (in the window).
        if cond.where:
            sql = events
            if cutoff is not None:
                sql += f" AND ts >= {m}"
                p.append(cutoff)
            sql += where_sql(d, "properties", cond.where, p)
        else:
            sql = stats + bots
            if cutoff is not None:
                sql += f" AND last_ts >= {m}"
                p.append(cutoff)
        return sql

    def _count_sql(self, expr: str, cond: EventCondition, negate: bool) -> str:
        parts = []
        for op, n in cond.compare:
            parts.append(f"{expr} {'=' if op == 'eq' else ORDER[op]} {self.d.mark}")
            self.params.append(n)
        test = " AND ".join(parts)
        return f"NOT ({test})" if negate else f"({test})"


def negated(cond: EventCondition) -> bool:
    """Whether the condition matches those *not* in its query of persons: has_not_done,
    and a count that 0 satisfies (lt 3, eq 0), which includes people who never did it:
    "everyone except those whose (non-zero) count fails"."""
    return cond.kind == "has_not_done" or (cond.kind == "count" and cond.count_ok(0))


def positive(cond: Condition) -> bool:
    """Whether everyone the condition matches did something it counts: then they are in
    scope (their counted events are their own, and bots' are left out unless asked), and
    the condition's own queries hold every match."""
    if isinstance(cond, Group):
        if cond.match == "all":
            return any(positive(c) for c in cond.conditions)
        return bool(cond.conditions) and all(positive(c) for c in cond.conditions)
    return isinstance(cond, EventCondition) and not negated(cond)


def residual(cond: Condition) -> Condition | None:
    """What is left to test of a `positive` tree once a person is among its candidates
    (`_Compiler.candidates`): None when being a candidate is the whole test, so the
    candidates' query is not run a second time as a filter."""
    if isinstance(cond, EventCondition):
        return None  # its candidates are exactly the persons it matches
    assert isinstance(cond, Group)
    if cond.match == "any":
        return None if all(residual(c) is None for c in cond.conditions) else cond
    first = next(c for c in cond.conditions if positive(c))
    rest: list[Condition] = [c for c in cond.conditions if c is not first]
    left = residual(first)
    if left is not None:
        rest.insert(0, left)
    return Group("all", tuple(rest)) if rest else None


def segment_sql(d: Dialect, app_id: str, query: SegmentQuery) -> tuple[str, list[Any]]:
    """Every matching person, in person order.

    Who is in scope: everyone with at least one event in the app (bots' events left out
    unless include_bots, so a person seen only as a bot is out), plus identified users
    who have no events at all (has_not_done and trait conditions can find them): the
    `persons` rows with events not from a bot, or with none at all (a known user)."""
    if positive(query.rules):
        compiler = _Compiler(d, app_id, query.include_bots, query.as_of)
        source = _Compiler(d, app_id, query.include_bots, query.as_of)
        candidates = source.candidates(query.rules)
        rest = residual(query.rules)
        condition = d.true if rest is None else compiler.compile(rest)
        sql = (
            f"SELECT person FROM ({candidates}) AS candidates WHERE {condition} "
            f"AND {_NOT_ALIASED.format(m=d.mark)} GROUP BY person ORDER BY person{d.collate}"
        )
        return sql, [*source.params, *compiler.params, app_id]
    sql, params = scope_sql(d, app_id, query)
    return f"{sql} ORDER BY person{d.collate}", params


# A user id aliased to another (core.apply_aliases) is no longer a person of its own: its
# events moved to the user, its traits too (Primitives.absorb_users), but its users and
# persons rows stay (a later event may still name it, for "require known user"), and
# neither may make it a second match.
_NOT_ALIASED = "person NOT IN (SELECT previous_id FROM user_aliases WHERE app_id = {m})"


def scope_sql(d: Dialect, app_id: str, query: SegmentQuery) -> tuple[str, list[Any]]:
    """The persons in scope that match a segment that is not `positive`, unordered:
    one walk of the app's persons rows, in key order, so that a page with LIMIT stops
    early."""
    compiler = _Compiler(d, app_id, query.include_bots, query.as_of)
    scope = "" if query.include_bots else " AND (human = 1 OR bot = 0)"
    condition = compiler.compile(query.rules)
    sql = (
        f"SELECT person FROM persons WHERE app_id = {d.mark}{scope} AND {condition} "
        f"AND {_NOT_ALIASED.format(m=d.mark)}"
    )
    return sql, [app_id, *compiler.params, app_id]


# Funnels -------------------------------------------------------------------------------


def funnel_sql(d: Dialect, app_id: str, query: FunnelQuery) -> tuple[str, list[Any]]:
    """Events matching any step, by (person, time, commit order), with the mask of the
    steps each matches (one event can match several) and, with a breakdown, the
    property of those that match the first step (its JSON text as `Dialect.json_raw`
    gives it). On SQLite this reads the (event, ts, person, is_bot, properties) index
    alone."""
    m = d.mark
    params: list[Any] = []
    masks = []
    for k, step in enumerate(query.steps):
        params.append(step.event)
        where = where_sql(d, "properties", step.where, params)
        masks.append(f"(CASE WHEN event = {m}{where} THEN {1 << k} ELSE 0 END)")
    # Only the first step's events name a bucket; NULL elsewhere spares creating
    # 100,000s of values nobody reads.
    value = "NULL"
    if query.breakdown is not None:
        first = query.steps[0]
        params.append(first.event)
        where = where_sql(d, "properties", first.where, params)
        raw = d.json_raw("properties", query.breakdown, params)
        value = f"CASE WHEN event = {m}{where} THEN {raw} END"
    events = sorted({s.event for s in query.steps})
    sql = (
        f"SELECT person, ts, {' | '.join(masks)} AS mask, {value} "
        f"FROM {d.table('events', 'events_event_ts')} "
        f"WHERE app_id = {m} AND event IN ({d.marks(len(events))})"
    )
    params += [app_id, *events]
    if not query.include_bots:
        sql += " AND is_bot = 0"
    if query.since is not None:
        sql += f" AND ts >= {m}"
        params.append(query.since)
    if query.until is not None:
        # Later steps may land after `until`, as long as they are within the window.
        sql += f" AND ts <= {m}"
        params.append(query.until + query.window_ms)
    sql += f" ORDER BY person{d.collate}, ts, {d.rowid}"
    return sql, params


def funnel_starts_sql(d: Dialect, app_id: str, query: FunnelQuery) -> tuple[str, list[Any]]:
    """The first step's events in [since, until), for a funnel read as columns with a
    breakdown: person, time, commit order and the breakdown property (as in
    `funnel_sql`), in no particular order. For a step without property filters: on
    SQLite, from the (event, ts, person, is_bot, properties) index alone."""
    assert query.breakdown is not None
    m = d.mark
    params: list[Any] = []
    raw = d.json_raw("properties", query.breakdown, params)
    sql = (
        f"SELECT person, ts, {d.rowid}, {raw} FROM {d.table('events', 'events_event_ts')} "
        f"WHERE app_id = {m} AND event = {m}"
    )
    params += [app_id, query.steps[0].event]
    if not query.include_bots:
        sql += " AND is_bot = 0"
    for bound, op in ((query.since, ">="), (query.until, "<")):
        if bound is not None:
            sql += f" AND ts {op} {m}"
            params.append(bound)
    return sql, params


# Event pages, stats, export --------------------------------------------------------------


def event_filter(
    d: Dialect,
    app_id: str,
    events: Sequence[str],
    since: int | None,
    until: int | None,
    include_bots: bool,
) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters shared by the event pages, the daily stats, the
    stream and the export: one app, these events, ts in [since, until)."""
    m = d.mark
    where = [f"app_id = {m}"]
    params: list[Any] = [app_id]
    if events:
        where.append(f"event IN ({d.marks(len(events))})")
        params.extend(events)
    if since is not None:
        where.append(f"ts >= {m}")
        params.append(since)
    if until is not None:
        where.append(f"ts < {m}")
        params.append(until)
    if not include_bots:
        where.append("is_bot = 0")
    return where, params


def export_sql(
    d: Dialect, app_id: str, since_ms: int | None, until_ms: int | None
) -> tuple[str, list[Any]]:
    """Every stored event of the app in [since, until), bots too, in (ts, commit) order."""
    where, params = event_filter(d, app_id, (), since_ms, until_ms, True)
    return f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY ts, {d.rowid}", params


def json_value(value: Any) -> Any:
    """A JSON column's value: SQLite gives its text, PostgreSQL's jsonb a Python value."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def dict_rows(cur: Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts keyed by column name."""
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# The reads -------------------------------------------------------------------------------


class Reader(ABC):
    """The query API's reads over one connection. A backend says how to run a statement,
    hold a read snapshot and read breakdown values; the queries are the same."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any]) -> Cursor: ...

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[object]:
        """One read transaction, so a count and the page it describes agree even while
        writers commit. Inside a transaction the caller opened, that one."""

    def segment(self, app_id: str, query: SegmentQuery) -> SegmentPage:
        with self.snapshot():
            if not positive(query.rules):
                # Tens of thousands of persons match "has not done" alike: count them in
                # the database, and read only the page, where the ordered walk stops.
                sql, params = scope_sql(self.dialect, app_id, query)
                count, page = self.count_and_page(sql, params, query)
                more = len(page) > query.limit
                page = page[: query.limit]
            else:
                # Candidates are grouped after reading: one pass, the page cut here.
                sql, params = segment_sql(self.dialect, app_id, query)
                persons = [row[0] for row in self.execute(sql, params)]
                start = bisect.bisect_right(persons, query.after) if query.after is not None else 0
                page = persons[start : start + query.limit]
                more = start + query.limit < len(persons)
                count = len(persons)
            users = self.describe_persons(app_id, page, query.include_bots)
        return SegmentPage(count, users, page[-1] if more and page else None)

    def count_and_page(
        self, sql: str, params: list[Any], query: SegmentQuery
    ) -> tuple[int, list[str]]:
        """How many persons `scope_sql`'s statement finds, and up to limit + 1 of them
        after the cursor's, in order: `count(*)`, then the page, where SQLite's ordered
        walk of `persons` stops after limit + 1 rows."""
        (row,) = self.execute(f"SELECT count(*) FROM ({sql}) AS matched", params)
        m, collate = self.dialect.mark, self.dialect.collate
        text, args = sql, list(params)
        if query.after is not None:
            text += f" AND person{collate} > {m}"
            args.append(query.after)
        text += f" ORDER BY person{collate} LIMIT {m}"
        args.append(query.limit + 1)
        return int(row[0]), [r[0] for r in self.execute(text, args)]

    def describe_persons(
        self, app_id: str, persons: Sequence[str], include_bots: bool
    ) -> list[dict[str, Any]]:
        """Id, traits, first and last seen for each person, in the given order. Seen times
        take the events of linked anonymous ids into account, not only the user's own."""
        d, m = self.dialect, self.dialect.mark
        bots = "" if include_bots else " AND is_bot = 0"
        users: dict[str, tuple[Any, int, int]] = {}
        seen: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(persons):
            for user_id, traits, first, last in self.execute(
                "SELECT user_id, traits, first_seen, last_seen FROM users "
                f"WHERE app_id = {m} AND user_id IN ({d.marks(len(chunk))})",
                (app_id, *chunk),
            ):
                users[user_id] = (traits, first, last)
            for person, first, last in self.execute(
                "SELECT person, MIN(first_ts), MAX(last_ts) FROM person_event_stats "
                f"WHERE app_id = {m} AND person IN ({d.marks(len(chunk))}){bots} GROUP BY person",
                (app_id, *chunk),
            ):
                seen[person] = (first, last)
        out = []
        for person in persons:
            user_id, anonymous_id = core.person_fields(person)
            row = users.get(person)  # a visitor's too: an identify that named only it
            spans = [span for span in (row[1:] if row else None, seen.get(person)) if span]
            out.append(
                {
                    "id": user_id,
                    "anonymous_id": anonymous_id,
                    "traits": json_value(row[0]) if row else {},
                    "first_seen": iso(min(s[0] for s in spans)) if spans else None,
                    "last_seen": iso(max(s[1] for s in spans)) if spans else None,
                }
            )
        return out

    def funnel_rows(self, app_id: str, query: FunnelQuery) -> Iterable[FunnelRow]:
        sql, params = funnel_sql(self.dialect, app_id, query)
        rows: Iterable[FunnelRow] = self.execute(sql, params)
        if any(step.where for step in query.steps):
            # Only property filters can leave an event matching no step.
            return (row for row in rows if row[2])
        return rows

    def funnel_starts(self, app_id: str, query: FunnelQuery) -> list[FunnelStart]:
        sql, params = funnel_starts_sql(self.dialect, app_id, query)
        return self.execute(sql, params).fetchall()

    def find_people(self, app_id: str, text: str, include_bots: bool, limit: int) -> list[str]:
        """People whose user id or anonymous id (theirs, or one linked to them) starts
        with `text` (as typed), or whose `email` trait does (in any case): the people
        search of the dashboard. A scan of the app's persons, links and users (substr,
        not LIKE: no pattern characters to escape, and the same on both backends), which
        a search can afford."""
        d, m = self.dialect, self.dialect.mark
        humans = "" if include_bots else " AND (human = 1 OR known = 1)"
        found: set[str] = set()
        for prefix in (text, "anon:" + text):
            found.update(
                str(row[0])
                for row in self.execute(
                    f"SELECT person FROM persons WHERE app_id = {m}"
                    f" AND substr(person, 1, {m}) = {m}{humans}"
                    f" ORDER BY person{d.collate} LIMIT {m}",
                    (app_id, len(prefix), prefix, limit),
                )
            )
        # A visitor who logged in is the user now: found by the anonymous id it had.
        found.update(
            str(row[0])
            for row in self.execute(
                f"SELECT user_id FROM identities WHERE app_id = {m}"
                f" AND substr(anonymous_id, 1, {m}) = {m}"
                f" ORDER BY anonymous_id{d.collate} LIMIT {m}",
                (app_id, len(text), text, limit),
            )
        )
        params: list[Any] = []
        email = d.json_text("traits", "email", params)
        found.update(
            str(row[0])
            for row in self.execute(
                f"SELECT user_id FROM users WHERE substr(lower({email}), 1, {m}) = {m}"
                f" AND app_id = {m} ORDER BY user_id{d.collate} LIMIT {m}",
                (*params, len(text), text.lower(), app_id, limit),
            )
        )
        return sorted(found)[:limit]

    def user_profile(self, app_id: str, user_id: str, include_bots: bool) -> dict[str, Any] | None:
        """A user (or an `anon:` person): traits, first/last seen, event counts by name and
        the anonymous ids linked to them. None if the app has never seen them."""
        d, m = self.dialect, self.dialect.mark
        bots = "" if include_bots else " AND is_bot = 0"
        with self.snapshot():
            user_id = self.alias_target(app_id, user_id)
            known = (
                self.execute(
                    f"SELECT 1 FROM users WHERE app_id = {m} AND user_id = {m}", (app_id, user_id)
                ).fetchone()
                is not None
            )
            # The users table holds identified users (identify calls, events with traits);
            # a user or anonymous person seen only through events is known by their events.
            if (
                not known
                and not self.execute(
                    f"SELECT 1 FROM person_event_stats WHERE app_id = {m} AND person = {m}",
                    (app_id, user_id),
                ).fetchone()
            ):
                return None
            counts = {
                event: int(n)
                for event, n in self.execute(
                    # Without statistics (no ANALYZE on SQLite) the planner would scan the
                    # whole app.
                    "SELECT event, SUM(n) FROM "
                    f"{d.table('person_event_stats', 'person_event_stats_person')} "
                    f"WHERE app_id = {m} AND person = {m}{bots} "
                    f"GROUP BY event ORDER BY event{d.collate}",
                    (app_id, user_id),
                )
            }
            (profile,) = self.describe_persons(app_id, [user_id], include_bots)
            aliases = [
                str(row[0])
                for row in self.execute(
                    f"SELECT previous_id FROM user_aliases WHERE app_id = {m} AND user_id = {m} "
                    f"ORDER BY aliased_at, previous_id{d.collate}",
                    (app_id, user_id),
                )
            ]
            if profile["id"] is not None:
                # Links come from any event that carried both ids, with or without an
                # identify call (a user seen only through events has them too), and
                # those of the ids aliased to the user are the user's.
                ids = [user_id, *aliases]
                profile["anonymous_ids"] = [
                    row[0]
                    for row in self.execute(
                        "SELECT anonymous_id FROM identities "
                        f"WHERE app_id = {m} AND user_id IN ({d.marks(len(ids))}) "
                        f"ORDER BY linked_at, anonymous_id{d.collate}",
                        (app_id, *ids),
                    )
                ]
            else:
                profile["anonymous_ids"] = [profile["anonymous_id"]]
            profile["aliases"] = aliases
            profile["event_counts"] = counts
            profile["events"] = sum(counts.values())
        return profile

    def alias_target(self, app_id: str, person: str) -> str:
        """Who a person asked for by an id it no longer goes by is now: the user a previous
        user id was aliased to (chains resolved when stored), the user an anonymous id
        (`anon:ID`) was linked to; else the person itself. A read by an old id answers
        for who it became."""
        m = self.dialect.mark
        if person.startswith(core.ANON):
            row = self.execute(
                f"SELECT user_id FROM identities WHERE app_id = {m} AND anonymous_id = {m}",
                (app_id, person[len(core.ANON) :]),
            ).fetchone()
            # A linked visitor's user may have been aliased since.
            return person if row is None else self.alias_target(app_id, str(row[0]))
        row = self.execute(
            f"SELECT user_id FROM user_aliases WHERE app_id = {m} AND previous_id = {m}",
            (app_id, person),
        ).fetchone()
        return person if row is None else str(row[0])

    def events_page(self, app_id: str, query: EventsQuery) -> EventsPage:
        d, m = self.dialect, self.dialect.mark
        where, params = event_filter(
            d, app_id, query.events, query.since, query.until, query.include_bots
        )
        if query.user is not None:
            where.append(f"person = {m}")
            params.append(self.alias_target(app_id, query.user))
        if query.anonymous_id is not None:
            where.append(f"anonymous_id = {m}")
            params.append(query.anonymous_id)
        where.extend(test_sql(d, "properties", test, params) for test in query.where)
        desc = query.order == "desc"
        if query.after is not None:
            where.append(f"(ts, {d.rowid}) {'<' if desc else '>'} ({m}, {m})")
            params.extend(query.after)
        direction = "DESC" if desc else "ASC"
        # One person's (or one event's) events are few next to the app's: read them by
        # that index and sort, rather than walk the whole app in time order.
        index = None
        if query.user is not None:
            index = "events_person"
        elif len(query.events) == 1:
            index = "events_event_ts"
        cur = self.execute(
            f"SELECT {d.rowid} AS _rowid, * FROM {d.table('events', index)} "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY ts {direction}, {d.rowid} {direction} LIMIT {m}",
            (*params, query.limit + 1),
        )
        rows = dict_rows(cur)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        out = []
        for row in rows:
            event = core.event_dict(row)
            event["is_bot"] = bool(row["is_bot"])
            out.append(event)
        last = (rows[-1]["ts"], rows[-1]["_rowid"]) if more and rows else None
        return EventsPage(out, last)

    def event_stats(self, app_id: str, query: StatsQuery) -> dict[str, Any]:
        """Events and distinct people per event per UTC day."""
        d = self.dialect
        where, params = event_filter(
            d, app_id, query.events, query.since, query.until, query.include_bots
        )
        days = []
        totals: dict[str, int] = {}
        for day, event, count, users in self.execute(
            f"SELECT {d.day} AS day, event, COUNT(*), COUNT(DISTINCT person) "
            f"FROM events WHERE {' AND '.join(where)} "
            f"GROUP BY day, event ORDER BY day, event{d.collate}",
            params,
        ):
            days.append({"day": day, "event": event, "count": count, "users": users})
            totals[event] = totals.get(event, 0) + count
        return {
            "days": days,
            "totals": dict(sorted(totals.items())),
            "bot_reasons": self.bot_reasons(app_id, query),
        }

    def bot_reasons(
        self, app_id: str, query: StatsQuery, person: str | None = None
    ) -> dict[str, int]:
        """What was filtered, and why: the bots among the query's events (whether or not
        the query includes bots), and one person's when given, by reason. Bots are few:
        the partial index of bot events (events_bots) reads them alone."""
        d = self.dialect
        reason_params: list[Any] = []
        reason = d.json_text("context", "bot_reason", reason_params)
        where, params = event_filter(d, app_id, query.events, query.since, query.until, True)
        if person is not None:
            where.append(f"person = {d.mark}")
            params.append(person)
        bots = {
            "unknown" if name is None else str(name): count
            for name, count in self.execute(
                f"SELECT {reason}, COUNT(*) FROM {d.table('events', 'events_bots')} "
                f"WHERE {' AND '.join(where)} AND is_bot = 1 GROUP BY 1",
                [*reason_params, *params],
            )
        }
        return dict(sorted(bots.items()))

    def stream_position(self) -> int:
        """The newest event's position: a stream that starts now shows what comes after it."""
        row = self.execute(f"SELECT max({self.dialect.rowid}) FROM events", ()).fetchone()
        return int(row[0] or 0)

    def stream_events(
        self, app_id: str, after: int, events: Sequence[str], include_bots: bool, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Events stored after position `after`, oldest first. Positions grow in commit
        order (each backend serialises the transactions that assign them), so polling
        "position > last seen" misses nothing any worker commits."""
        d, m = self.dialect, self.dialect.mark
        where, params = event_filter(d, app_id, events, None, None, include_bots)
        cur = self.execute(
            f"SELECT {d.rowid} AS _rowid, * FROM events WHERE {d.rowid} > {m} "
            f"AND {' AND '.join(where)} ORDER BY {d.rowid} LIMIT {m}",
            (after, *params, limit),
        )
        return [(row["_rowid"], core.event_dict(row)) for row in dict_rows(cur)]
