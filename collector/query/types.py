"""The query types: what the query API asks the store, and what the store answers.

The parsers (segments.py, funnels.py) build these from request bodies; each storage
backend compiles them into its own SQL. The store knows these types and nothing else of
the query layer (no parsing, no algorithm)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

DAY_MS = 86_400_000

EventKind = Literal["has_done", "has_not_done", "count", "first_done_within", "last_done_within"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "has_done",
    "has_not_done",
    "count",
    "first_done_within",
    "last_done_within",
)
COMPARATORS = ("gt", "gte", "lt", "lte", "eq")
FILTER_OPS = ("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "exists")

Scalar: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class PropertyTest:
    """One test of one property (or trait). Values are typed: the string "1" is not the
    number 1, and `true` is not 1. A missing key fails every test except `neq`,
    `not_in` and `exists: false`, which are the negations of tests it fails."""

    key: str
    op: str
    value: Any  # a Scalar; a tuple of them for in/not_in; a bool for exists

    def matches(self, props: Mapping[str, Any]) -> bool:
        present = self.key in props
        actual = props.get(self.key)
        if self.op == "exists":
            return present is bool(self.value)
        if self.op == "eq":
            return present and same_value(actual, self.value)
        if self.op == "neq":
            return not (present and same_value(actual, self.value))
        if self.op == "in":
            return present and any(same_value(actual, v) for v in self.value)
        if self.op == "not_in":
            return not (present and any(same_value(actual, v) for v in self.value))
        if not present or not _comparable(actual, self.value):
            return False
        if self.op == "gt":
            return bool(actual > self.value)
        if self.op == "gte":
            return bool(actual >= self.value)
        if self.op == "lt":
            return bool(actual < self.value)
        return bool(actual <= self.value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(actual: Any, expected: Scalar) -> bool:
    """Typed equality, as the SQL compiler implements it."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual is expected
    if is_number(expected):
        return is_number(actual) and bool(actual == expected)
    return isinstance(actual, str) and actual == expected


def _comparable(actual: Any, expected: Any) -> bool:
    if is_number(expected):
        return is_number(actual)
    return isinstance(actual, str) and isinstance(expected, str)


@dataclass(frozen=True, slots=True)
class EventCondition:
    kind: EventKind
    event: str
    where: tuple[PropertyTest, ...] = ()
    # A window (count, has_done, has_not_done) or the days of first/last_done_within.
    within_ms: int | None = None
    compare: tuple[tuple[str, int], ...] = ()  # count only: (op, n), all must hold

    def count_ok(self, n: int) -> bool:
        return all(_compare(op, n, bound) for op, bound in self.compare)


def _compare(op: str, n: int, bound: int) -> bool:
    if op == "gt":
        return n > bound
    if op == "gte":
        return n >= bound
    if op == "lt":
        return n < bound
    if op == "lte":
        return n <= bound
    return n == bound


@dataclass(frozen=True, slots=True)
class TraitCondition:
    tests: tuple[PropertyTest, ...]  # one key, every test must hold

    def matches(self, traits: Mapping[str, Any]) -> bool:
        return all(t.matches(traits) for t in self.tests)


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


@dataclass(frozen=True, slots=True)
class Group:
    match: Literal["all", "any"]
    conditions: tuple[Condition, ...]


Condition: TypeAlias = EventCondition | TraitCondition | Not | Group


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    rules: Group
    include_bots: bool
    as_of: int  # the "now" that windows count back from, epoch ms
    limit: int
    after: str | None  # the last person of the previous page
    fingerprint: str  # identifies the rules, so a cursor cannot wander to another query


# Segments, pages and funnels --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentPage:
    count: int
    users: list[dict[str, Any]]
    last: str | None  # the last person of this page when more follow, else None


@dataclass(frozen=True, slots=True)
class Step:
    event: str
    where: tuple[PropertyTest, ...] = ()
    raw_where: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FunnelQuery:
    steps: tuple[Step, ...]
    window_ms: int
    since: int | None
    until: int | None
    breakdown: str | None
    include_bots: bool

    def starts_in_range(self, ts: np.ndarray) -> np.ndarray:
        """Which of these first-step times may start an attempt: those in [since, until)."""
        keep = np.ones(len(ts), dtype=bool)
        if self.since is not None:
            keep &= ts >= self.since
        if self.until is not None:
            keep &= ts < self.until
        return keep


# An event matching at least one step, as the store yields it, ordered by person, time
# and insertion: (person, ts, mask, value). Bit k of `mask` is set when it matches step
# k (one event can match several); with a breakdown, `value` is the breakdown
# property of an event that matches the first step (its JSON text as SQLite's `->`
# gives it, None when absent), else None.
FunnelRow: TypeAlias = tuple[str, int, int, str | None]


@dataclass(frozen=True, slots=True)
class EventTimes:
    """One event name's occurrences as columns, sorted by (person, ts): person codes
    (int64, dense, shared by every array of one `FunnelColumns`) and times (int64 ms)."""

    person: np.ndarray
    ts: np.ndarray


@dataclass(frozen=True, slots=True)
class FunnelColumns:
    """A funnel's events as columns, for a funnel whose steps have no property filter
    (each event then matches the steps of its name alike, so times are all the matching
    needs).

    `events`: each step's event name → its occurrences (bots left out unless the query
    includes them). With a breakdown, `starts` is the first step's occurrences in
    [since, until) in (person, ts, commit order) and `values[start_values[i]]` the
    breakdown property of the i-th (JSON text as in `FunnelRow`); else None."""

    events: Mapping[str, EventTimes]
    starts: EventTimes | None = None
    start_values: np.ndarray | None = None  # int64 indexes into `values`
    values: Sequence[str | None] = ()


@dataclass(frozen=True, slots=True)
class FunnelEvents:
    """What the store reads for a funnel, inside one read snapshot: the event rows, or
    (when it can, for steps without property filters) the same events as columns."""

    rows: Iterable[FunnelRow]
    columns: FunnelColumns | None = None


@dataclass(frozen=True, slots=True)
class EventsQuery:
    user: str | None = None  # a person: a user id (with their anonymous past) or anon:ID
    anonymous_id: str | None = None
    events: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    include_bots: bool = False
    where: tuple[PropertyTest, ...] = ()  # tests of the event's properties, all must hold
    order: str = "desc"  # newest first
    limit: int = 100
    after: tuple[int, int] | None = None  # (ts, rowid) of the previous page's last event


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[dict[str, Any]]
    last: tuple[int, int] | None  # set when more follow


@dataclass(frozen=True, slots=True)
class StatsQuery:
    events: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    include_bots: bool = False


# Web analytics (store/visits.py says what a visit is). Visit attributes are the landing
# event's: filtering by one keeps whole visits. `page` and `event` filter events.
VISIT_DIMENSIONS = (
    "entry_page",
    "exit_page",
    "referrer",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "ref",
    "country",
    "browser",
    "os",
    "device",
)
EVENT_DIMENSIONS = ("page", "event")
DIMENSIONS = ("page", *VISIT_DIMENSIONS, "event")
NONE_VALUE = "(none)"  # a filter value that matches visits without the attribute


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    since: int  # [since, until), epoch ms
    until: int
    interval: Literal["hour", "day"] = "day"
    filters: tuple[tuple[str, str | None], ...] = ()  # (dimension, value); None: unset
    include_bots: bool = False
    limit: int = 100
