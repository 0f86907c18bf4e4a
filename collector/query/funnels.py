"""Funnels (`POST /v1/funnels`): ordered steps per person, each within a window of the
first step.

Parsing and the matching algorithm live here, as plain Python over rows the store
fetches (store/queries.py): per person, the events that match any step, in time order.

Rules, per person (a person is a resolved identity: what a visitor did before logging in
counts for the user):
- the first step must happen in [since, until); later steps only within `within_days`
  of it (inclusive) and never before the step they follow — an equal timestamp is fine,
  but one event occurrence fills one step only;
- every occurrence of the first step is tried and the attempt that gets furthest wins;
  among those the earliest start. Within an attempt each step takes the earliest
  occurrence that fits, which cannot reach less far than any other choice;
- the breakdown value is the property of that winning attempt's first event.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import statistics
from collections.abc import Iterable
from typing import Any, TypeAlias

import numpy as np
import orjson

from collector.errors import FieldError, InvalidRequest, field_error
from collector.query.segments import (
    check_budget,
    parse_bool,
    parse_days,
    parse_event_name,
    parse_key,
    parse_time,
    parse_where,
)
from collector.query.types import DAY_MS, FunnelColumns, FunnelQuery, FunnelRow, Step
from collector.store.base import Store

MAX_STEPS = 20
DEFAULT_WINDOW_DAYS = 14
NO_VALUE = "(none)"  # breakdown bucket of events without the property


def parse_funnel_query(body: Any) -> FunnelQuery:
    if not isinstance(body, dict):
        raise InvalidRequest(
            "The funnel must be a JSON object",
            [field_error("body", 'must be an object like {"steps": ["a", "b"]}')],
        )
    errors: list[FieldError] = []
    known = {"steps", "within_days", "since", "until", "breakdown", "include_bots"}
    for key in body:
        if key not in known:
            errors.append(field_error(key, "is not a known field"))
    raw_steps = body.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not 2 <= len(raw_steps) <= MAX_STEPS:
        errors.append(field_error("steps", f"must be a list of 2 to {MAX_STEPS} steps"))
    else:
        for i, raw in enumerate(raw_steps):
            step = _parse_step(raw, f"steps[{i}]", errors)
            if step is not None:
                steps.append(step)
        check_budget([t for step in steps for t in step.where], "steps", errors)
    window_ms = DEFAULT_WINDOW_DAYS * DAY_MS
    if body.get("within_days") is not None:
        window_ms = parse_days(body["within_days"], "within_days", errors) or window_ms
    since = parse_time(body.get("since"), "since", errors)
    until = parse_time(body.get("until"), "until", errors)
    if since is not None and until is not None and until <= since:
        errors.append(field_error("until", "must be after since"))
    breakdown = body.get("breakdown")
    if breakdown is not None and not parse_key(breakdown, "breakdown", errors):
        breakdown = None
    include_bots = parse_bool(body.get("include_bots", False), "include_bots", errors)
    if errors:
        raise InvalidRequest("Invalid funnel", errors)
    return FunnelQuery(tuple(steps), window_ms, since, until, breakdown, include_bots)


def _parse_step(raw: Any, path: str, errors: list[FieldError]) -> Step | None:
    if isinstance(raw, str):
        name = parse_event_name(raw, path, errors)
        return Step(name) if name else None
    if not isinstance(raw, dict):
        errors.append(field_error(path, 'must be an event name or {"event": ..., "where": {...}}'))
        return None
    for key in raw:
        if key not in ("event", "where"):
            errors.append(field_error(f"{path}.{key}", "is not a known field"))
    name = parse_event_name(raw.get("event"), f"{path}.event", errors)
    where = parse_where(raw.get("where"), f"{path}.where", errors)
    return Step(name, where, raw.get("where") if where else None)


# The winning attempt of one person: the times of the steps reached, and the breakdown
# value of its first event.
_Attempt: TypeAlias = tuple[list[int], str | None]


def _best_attempt(
    events: list[FunnelRow], n_steps: int, window_ms: int, lo: float, hi: float
) -> _Attempt | None:
    if len(events) == 1:  # the common case of people who stop at the first step
        _, t0, mask, value = events[0]
        return ([t0], value) if mask & 1 and lo <= t0 < hi else None
    times = [e[1] for e in events]
    masks = [e[2] for e in events]
    size = len(events)
    best: _Attempt | None = None
    for start in range(size):
        t0 = times[start]
        if not masks[start] & 1 or not lo <= t0 < hi:
            continue
        used = {start}
        reached = [t0]
        deadline = t0 + window_ms
        for k in range(1, n_steps):
            bit = 1 << k
            # Ties: a step may share the previous step's timestamp, so the search starts
            # at the first event with that time, not after the previous match.
            j = bisect.bisect_left(times, reached[-1])
            while j < size and times[j] <= deadline:
                if masks[j] & bit and j not in used:
                    break
                j += 1
            else:
                break
            used.add(j)
            reached.append(times[j])
        if best is None or len(reached) > len(best[0]):
            best = (reached, events[start][3])
            if len(reached) == n_steps:
                break
    return best


def breakdown_key(raw: str | None) -> str:
    """A JSON value as an object key: strings as themselves, others as JSON text."""
    if raw is None or raw == "null":
        return NO_VALUE
    if raw.startswith('"'):
        value = orjson.loads(raw)
        return value if isinstance(value, str) else raw
    return raw


class _Tally:
    """People by how far they got, and the gaps between consecutive steps (ms)."""

    __slots__ = ("gaps", "stopped_at", "total")

    def __init__(self, n_steps: int) -> None:
        self.total = 0
        self.stopped_at = [0] * n_steps
        self.gaps: list[list[int]] = [[] for _ in range(n_steps)]

    def add(self, times: list[int]) -> None:
        self.total += 1
        self.stopped_at[len(times) - 1] += 1
        for k in range(1, len(times)):
            self.gaps[k].append(times[k] - times[k - 1])

    def merge(self, other: _Tally) -> None:
        self.total += other.total
        for k, gaps in enumerate(other.gaps):
            self.stopped_at[k] += other.stopped_at[k]
            self.gaps[k] += gaps

    def answers(self, steps: tuple[Step, ...]) -> list[dict[str, Any]]:
        medians = [statistics.median(g) / 1000 if g else None for g in self.gaps]
        return _answers(steps, self.total, self.stopped_at, medians)


def _answers(
    steps: tuple[Step, ...], total: int, stopped_at: list[int], medians: list[float | None]
) -> list[dict[str, Any]]:
    """Per step: users, conversions and the median seconds from the previous step, from
    how many people stopped at each step."""
    out: list[dict[str, Any]] = []
    first = previous = users = total
    for k, step in enumerate(steps):
        answer: dict[str, Any] = {
            "event": step.event,
            "users": users,
            "conversion_from_first": round(users / first, 4) if first else 0.0,
            "conversion_from_previous": round(users / previous, 4) if previous else 0.0,
            "median_seconds_from_previous": medians[k],
        }
        if step.raw_where is not None:
            answer["where"] = step.raw_where
        out.append(answer)
        previous = users
        users -= stopped_at[k]
    return out


def compute_funnel(query: FunnelQuery, rows: Iterable[FunnelRow]) -> dict[str, Any]:
    """The answer: per step users, conversions and median time from the previous step;
    with a breakdown (the rows' values), the same per value."""
    n_steps, window = len(query.steps), query.window_ms
    lo = -math.inf if query.since is None else query.since
    hi = math.inf if query.until is None else query.until
    attempts: list[_Attempt] = []
    for _, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        attempt = _best_attempt(list(group), n_steps, window, lo, hi)
        if attempt is not None:
            attempts.append(attempt)
    overall = _Tally(n_steps)
    if query.breakdown is None:
        for times, _ in attempts:
            overall.add(times)
        return {"steps": overall.answers(query.steps), "breakdown": None}
    buckets: dict[str, _Tally] = {}
    keys: dict[str | None, str] = {}  # few distinct values: decode each once
    for times, raw in attempts:
        key = keys.get(raw)
        if key is None:
            key = keys[raw] = breakdown_key(raw)
        tally = buckets.get(key)
        if tally is None:
            tally = buckets[key] = _Tally(n_steps)
        tally.add(times)
    ordered = sorted(buckets.items(), key=lambda kv: (-kv[1].total, kv[0]))
    for _, tally in ordered:  # everyone is in exactly one bucket
        overall.merge(tally)
    return {
        "steps": overall.answers(query.steps),
        "breakdown": {value: {"steps": t.answers(query.steps)} for value, t in ordered},
    }


def compute_funnel_columns(query: FunnelQuery, columns: FunnelColumns) -> dict[str, Any]:
    """`compute_funnel`'s answer from columns (steps without property filters), every
    person's attempts at once: each step of every attempt is one binary search of that
    step's occurrences, sorted by (person, time). The rules are `_best_attempt`'s:
    each step takes the earliest occurrence at or after the previous step's time that
    the attempt has not used, within the window; since a step is matched by its name
    alone, the occurrences an attempt used at the previous step's time are the first
    ones there, so skipping as many as it used finds the next free one."""
    names = [step.event for step in query.steps]
    n_steps = len(names)
    first = columns.starts if columns.starts is not None else columns.events[names[0]]
    chosen = np.flatnonzero(query.starts_in_range(first.ts))
    person, t0 = first.person[chosen], first.ts[chosen]
    key = _Keys([t0, *(columns.events[name].ts for name in names[1:])], [person])
    reached = np.zeros((n_steps, len(t0)), dtype=np.int64)
    reached[0] = t0
    depth = np.ones(len(t0), dtype=np.int64)
    alive = np.ones(len(t0), dtype=bool)
    deadline = t0 + query.window_ms
    sorted_keys: dict[str, np.ndarray] = {}
    for k in range(1, n_steps):
        found = columns.events[names[k]]
        if len(found.ts) == 0:
            break
        if names[k] not in sorted_keys:
            sorted_keys[names[k]] = key(found.person, found.ts)
        at = np.searchsorted(sorted_keys[names[k]], key(person, reached[k - 1]), side="left")
        for j in range(k):  # the occurrences this attempt used at that very time
            if names[j] == names[k]:
                at += reached[j] == reached[k - 1]
        alive &= at < len(found.ts)
        at = np.minimum(at, len(found.ts) - 1)
        alive &= (found.person[at] == person) & (found.ts[at] <= deadline)
        reached[k] = np.where(alive, found.ts[at], 0)
        depth += alive
        if not alive.any():
            break
    best = _best(person, depth)
    depth, reached = depth[best], reached[:, best]
    overall = _column_tallies(np.zeros(len(best), np.int64), 1, depth, reached, n_steps)[0]
    if query.breakdown is None or columns.start_values is None:
        return {"steps": _answers(query.steps, *overall), "breakdown": None}
    value_keys = [breakdown_key(v) for v in columns.values]
    names_of, bucket_of_value = np.unique(np.array(value_keys, dtype=object), return_inverse=True)
    buckets = bucket_of_value[columns.start_values[chosen][best]].astype(np.int64)
    tallies = _column_tallies(buckets, len(names_of), depth, reached, n_steps)
    ordered = sorted(
        (b for b in range(len(names_of)) if tallies[b][0]),
        key=lambda b: (-tallies[b][0], names_of[b]),
    )
    return {
        "steps": _answers(query.steps, *overall),
        "breakdown": {
            str(names_of[b]): {"steps": _answers(query.steps, *tallies[b])} for b in ordered
        },
    }


def _best(person: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Each person's best attempt, of attempts in (person, start time, commit order):
    the furthest, then the earliest start (then the first in commit order, which only
    the breakdown value can tell apart): the first attempt of the person that reaches
    the person's deepest step."""
    if len(person) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.ones(len(person), dtype=bool)
    change[1:] = person[1:] != person[:-1]
    starts = np.flatnonzero(change)
    deepest = np.maximum.reduceat(depth, starts)
    group = np.cumsum(change) - 1
    candidates = np.flatnonzero(depth == deepest[group])
    first = np.ones(len(candidates), dtype=bool)
    first[1:] = group[candidates][1:] != group[candidates][:-1]
    best: np.ndarray = candidates[first]
    return best


class _Keys:
    """(person, time) pairs as one int64 each, ordered as the pairs are: person × span +
    time offset when that fits in 62 bits, else person × n + the time's rank among
    every time given (all the times a search can ask for)."""

    def __init__(self, times: list[np.ndarray], persons: list[np.ndarray]) -> None:
        present = [t for t in times if len(t)]
        self.low = min((int(t.min()) for t in present), default=0)
        span = max((int(t.max()) for t in present), default=0) - self.low + 1
        people = max((int(p.max()) for p in persons if len(p)), default=0) + 1
        self.ranks: np.ndarray | None = None
        if people * span >= 1 << 62:
            self.ranks = np.unique(np.concatenate(present))
            span = len(self.ranks)
        self.span = span

    def __call__(self, person: np.ndarray, ts: np.ndarray) -> np.ndarray:
        offset = ts - self.low if self.ranks is None else np.searchsorted(self.ranks, ts)
        keys: np.ndarray = person.astype(np.int64) * self.span + offset
        return keys


def _column_tallies(
    groups: np.ndarray, n_groups: int, depth: np.ndarray, reached: np.ndarray, n_steps: int
) -> list[tuple[int, list[int], list[float | None]]]:
    """Per group: (people, how many stopped at each step, the median seconds from each
    step's previous one), as `_Tally` counts them."""
    stopped = np.bincount(groups * n_steps + depth - 1, minlength=n_groups * n_steps)
    stopped = stopped.reshape(n_groups, n_steps)
    medians: list[list[float | None]] = [[None] * n_steps for _ in range(n_groups)]
    for k in range(1, n_steps):
        got = depth > k
        for g, median in _medians(groups[got], reached[k][got] - reached[k - 1][got], n_groups):
            medians[g][k] = median / 1000
    return [
        (int(stopped[g].sum()), [int(x) for x in stopped[g]], medians[g]) for g in range(n_groups)
    ]


def _medians(groups: np.ndarray, values: np.ndarray, n_groups: int) -> list[tuple[int, float]]:
    """The median of each group's values (as `statistics.median`: the middle one, or the
    mean of the two middle ones), for the groups that have values."""
    order = np.lexsort((values, groups))
    values = values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    out = []
    for g in np.flatnonzero(counts):
        low, high = starts[g] + (counts[g] - 1) // 2, starts[g] + counts[g] // 2
        out.append((int(g), (int(values[low]) + int(values[high])) / 2))
    return out


def run_funnel(store: Store, app_id: str, query: FunnelQuery) -> dict[str, Any]:
    """The funnel's answer, from the events the store reads for it."""
    with store.funnel_events(app_id, query) as found:
        if found.columns is not None:
            return compute_funnel_columns(query, found.columns)
        return compute_funnel(query, found.rows)
