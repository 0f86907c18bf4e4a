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
from collector.query.types import DAY_MS, FunnelQuery, FunnelRow, Step
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
        out: list[dict[str, Any]] = []
        first = previous = self.total
        users = self.total
        for k, step in enumerate(steps):
            answer: dict[str, Any] = {
                "event": step.event,
                "users": users,
                "conversion_from_first": round(users / first, 4) if first else 0.0,
                "conversion_from_previous": round(users / previous, 4) if previous else 0.0,
                "median_seconds_from_previous": (
                    statistics.median(self.gaps[k]) / 1000 if self.gaps[k] else None
                ),
            }
            if step.raw_where is not None:
                answer["where"] = step.raw_where
            out.append(answer)
            previous = users
            users -= self.stopped_at[k]
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


def run_funnel(store: Store, app_id: str, query: FunnelQuery) -> dict[str, Any]:
    """The funnel's answer, from the events the store reads for it."""
    with store.funnel_events(app_id, query) as found:
        return compute_funnel(query, found.rows)
