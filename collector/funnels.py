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
import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from collector.errors import FieldError, InvalidRequest, field_error
from collector.segments import (
    DAY_MS,
    PropertyTest,
    parse_bool,
    parse_days,
    parse_event_name,
    parse_time,
    parse_where,
)

MAX_STEPS = 20
DEFAULT_WINDOW_DAYS = 14
NO_VALUE = "(none)"  # breakdown bucket of events without the property


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


@dataclass(frozen=True, slots=True)
class FunnelRow:
    """An event matching at least one step: `mask` bit k set when it matches step k;
    `breakdown` the property's JSON text (first-step events only)."""

    person: str
    ts: int
    mask: int
    breakdown: str | None


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
    window_ms = DEFAULT_WINDOW_DAYS * DAY_MS
    if body.get("within_days") is not None:
        window_ms = parse_days(body["within_days"], "within_days", errors) or window_ms
    since = parse_time(body.get("since"), "since", errors)
    until = parse_time(body.get("until"), "until", errors)
    if since is not None and until is not None and until <= since:
        errors.append(field_error("until", "must be after since"))
    breakdown = body.get("breakdown")
    if breakdown is not None and (
        not isinstance(breakdown, str) or not 1 <= len(breakdown) <= 255 or '"' in breakdown
    ):
        errors.append(field_error("breakdown", "must be a property name (1-255 characters)"))
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


@dataclass(slots=True)
class _Attempt:
    times: list[int]
    breakdown: str | None


def _best_attempt(
    events: list[FunnelRow], n_steps: int, window_ms: int, since: int | None, until: int | None
) -> _Attempt | None:
    times = [e.ts for e in events]
    best: _Attempt | None = None
    for start, first in enumerate(events):
        if not first.mask & 1:
            continue
        if (since is not None and first.ts < since) or (until is not None and first.ts >= until):
            continue
        used = {start}
        reached = [first.ts]
        deadline = first.ts + window_ms
        for k in range(1, n_steps):
            bit = 1 << k
            # Ties: a step may share the previous step's timestamp, so the search starts
            # at the first event with that time, not after the previous match.
            j = bisect.bisect_left(times, reached[-1])
            found = -1
            while j < len(events) and times[j] <= deadline:
                if events[j].mask & bit and j not in used:
                    found = j
                    break
                j += 1
            if found < 0:
                break
            used.add(found)
            reached.append(times[found])
        if best is None or len(reached) > len(best.times):
            best = _Attempt(reached, first.breakdown)
            if len(reached) == n_steps:
                break
    return best


def _by_person(rows: Iterable[FunnelRow]) -> Iterator[list[FunnelRow]]:
    """Rows arrive ordered by (person, ts, insertion)."""
    current: list[FunnelRow] = []
    for row in rows:
        if current and row.person != current[0].person:
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def breakdown_key(raw: str | None) -> str:
    """A JSON value as an object key: strings as themselves, others as JSON text."""
    if raw is None or raw == "null":
        return NO_VALUE
    if raw.startswith('"'):
        value = orjson.loads(raw)
        return value if isinstance(value, str) else raw
    return raw


def _step_answers(query: FunnelQuery, attempts: list[_Attempt]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    first = sum(1 for a in attempts if a.times)
    previous = first
    for k, step in enumerate(query.steps):
        reached = [a for a in attempts if len(a.times) > k]
        users = len(reached)
        answer: dict[str, Any] = {
            "event": step.event,
            "users": users,
            "conversion_from_first": round(users / first, 4) if first else 0.0,
            "conversion_from_previous": round(users / previous, 4) if previous else 0.0,
            "median_seconds_from_previous": None,
        }
        if step.raw_where is not None:
            answer["where"] = step.raw_where
        if k > 0 and reached:
            gaps = [(a.times[k] - a.times[k - 1]) / 1000 for a in reached]
            answer["median_seconds_from_previous"] = statistics.median(gaps)
        answers.append(answer)
        previous = users
    return answers


def compute_funnel(query: FunnelQuery, rows: Iterable[FunnelRow]) -> dict[str, Any]:
    """The answer: per step users, conversions and median time from the previous step;
    with a breakdown, the same per value of the property."""
    attempts: list[_Attempt] = []
    for events in _by_person(rows):
        attempt = _best_attempt(events, len(query.steps), query.window_ms, query.since, query.until)
        if attempt is not None:
            attempts.append(attempt)
    answer: dict[str, Any] = {"steps": _step_answers(query, attempts), "breakdown": None}
    if query.breakdown is not None:
        buckets: dict[str, list[_Attempt]] = {}
        for attempt in attempts:
            buckets.setdefault(breakdown_key(attempt.breakdown), []).append(attempt)
        ordered = sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        answer["breakdown"] = {
            value: {"steps": _step_answers(query, group)} for value, group in ordered
        }
    return answer
