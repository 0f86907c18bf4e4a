"""What a page's URL says: the period, the bot toggle, event and property filters. The
URL holds a page's whole state, so any view can be bookmarked or shared."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from starlette.datastructures import QueryParams

from collector.errors import FieldError, field_error
from collector.query.analytics import MAX_BUCKETS
from collector.query.segments import parse_where
from collector.query.types import DAY_MS, FILTER_OPS, PropertyTest

PERIODS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}
DEFAULT_PERIOD = "30d"
# The days a custom range may name: timestamps run from the epoch to 9999-12-31, and
# the range ends at the midnight after its last day.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    since: int
    until: int | None  # None: up to now
    start: str  # the first day shown, YYYY-MM-DD
    end: str  # the last day shown, inclusive
    # From and To were given with a period other than custom, naming other days: the
    # period wins (the form sends both with every period) and the page says so.
    dates_ignored: bool = False

    @property
    def label(self) -> str:
        if self.key == "custom":
            return f"{self.start} – {self.end}"
        return PERIODS[self.key]

    def params(self) -> dict[str, str]:
        """The query parameters that name this period."""
        if self.key == "custom":
            return {"period": "custom", "from": self.start, "to": self.end}
        return {"period": self.key}

    def previous(self) -> Period:
        """The period of the same length just before (the overview compares with it)."""
        until = self.since
        length = (self.until if self.until is not None else _now()) - self.since
        since = until - length
        return Period(self.key, since, until, _day(since), _day(until - 1))


def _now() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def _midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def parse_period(params: QueryParams, errors: list[FieldError], now: int | None = None) -> Period:
    """today, 7d, 30d (days counted back from today's UTC midnight, today included) or
    custom (`from` and `to`, UTC days, both included)."""
    now = _now() if now is None else now
    today = datetime.fromtimestamp(now / 1000, tz=UTC).date()
    key = params.get("period") or DEFAULT_PERIOD
    if key not in PERIODS:
        errors.append(field_error("period", f"must be one of {', '.join(PERIODS)}"))
        key = DEFAULT_PERIOD
    if key == "custom":
        try:
            start = date.fromisoformat(params.get("from", ""))
            end = date.fromisoformat(params.get("to", ""))
        except ValueError:
            errors.append(field_error("from", "from and to must be days, YYYY-MM-DD"))
            key = DEFAULT_PERIOD
        else:
            if start < FIRST_DAY:
                errors.append(field_error("from", f"must be {FIRST_DAY} or later"))
                start = FIRST_DAY
            if end > LAST_DAY:
                errors.append(field_error("to", f"must be {LAST_DAY} or earlier"))
                end = LAST_DAY
            if end < start:
                errors.append(field_error("to", "must be on or after from"))
                end = start
            elif (end - start).days + 1 > MAX_BUCKETS:
                # The overview's chart has a point a day, and the analytics API caps a
                # series at MAX_BUCKETS; a longer range took seconds and megabytes.
                latest = start + timedelta(days=MAX_BUCKETS - 1)
                errors.append(
                    field_error(
                        "to",
                        f"a custom range is at most {MAX_BUCKETS:,} days: from {start}, "
                        f"to {latest} at the latest",
                    )
                )
                end = latest
            until = _midnight(end) + DAY_MS
            return Period(key, _midnight(start), until, start.isoformat(), end.isoformat())
    days = {"today": 1, "7d": 7, "30d": 30}[key]
    start = today - timedelta(days=days - 1)
    given = (params.get("from") or start.isoformat(), params.get("to") or today.isoformat())
    ignored = given != (start.isoformat(), today.isoformat())
    return Period(key, _midnight(start), None, start.isoformat(), today.isoformat(), ignored)


def include_bots(params: QueryParams) -> bool:
    return params.get("bots") in ("1", "true", "on")


def scalar(text: str) -> Any:
    """A filter value as typed in a form: JSON when it is a JSON scalar (`42`, `true`,
    `"42"`), else the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if value is None or isinstance(value, str | int | float | bool) else text


OPERATORS = FILTER_OPS  # eq, neq, in, not_in, gt, gte, lt, lte, exists
# What the funnels form reads at most: the Query API refuses more steps or tests anyway.
MAX_FORM_STEPS, MAX_FORM_FILTERS = 50, 50


def typed_value(op: str, value: str) -> Any:
    """A form's value for an operator, as the Query API takes it: a boolean for
    `exists`; a list for `in` and `not_in` (a JSON array, or values split on commas,
    each as `scalar`); else `scalar`."""
    if op == "exists":
        return value.lower() not in ("false", "0", "no")
    if op in ("in", "not_in"):
        if value.strip().startswith("["):
            try:
                return orjson.loads(value)  # the Query API's parser checks the items
            except orjson.JSONDecodeError:
                pass
        return [scalar(v.strip()) for v in value.split(",") if v.strip()]
    return scalar(value)


def property_filter(
    key: str, op: str, value: str, errors: list[FieldError]
) -> tuple[PropertyTest, ...]:
    """One property test from a form's key, operator and value, by the Query API's own
    parser (the same types, the same errors)."""
    if not key:
        return ()
    if op not in OPERATORS:
        errors.append(field_error("op", f"must be one of {', '.join(OPERATORS)}"))
        return ()
    return parse_where({key: {op: typed_value(op, value)}}, "where", errors)


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """A step of the funnels form: an event name and its property tests, each a key,
    an operator and a value as typed."""

    event: str
    filters: tuple[tuple[str, str, str], ...] = ()

    def body(self, path: str, errors: list[FieldError]) -> str | dict[str, Any]:
        """The step as `POST /v1/funnels` takes it: the name, or {"event", "where"}."""
        if not self.filters:
            return self.event
        where: dict[str, dict[str, Any]] = {}
        for key, op, value in self.filters:
            if op not in OPERATORS:
                errors.append(
                    field_error(f"{path}.where.{key}", f"must be one of {', '.join(OPERATORS)}")
                )
                continue
            where.setdefault(key, {})[op] = typed_value(op, value)
        return {"event": self.event, "where": where}


# What the funnels form sends, besides each step's filters (`wN.key`, `wN.op`, `wN.value`).
FUNNEL_PARAMS = ("step", "within_days", "breakdown", "period", "from", "to", "bots")
_STEP_FILTER = re.compile(r"w[1-9][0-9]*\.(key|op|value)")


def unknown_funnel_params(params: QueryParams, errors: list[FieldError]) -> None:
    """A parameter the funnels form does not send is an error naming it: a hand-made URL
    (`window=-1` for `within_days`) would otherwise answer for the defaults."""
    for name in sorted(set(params.keys())):
        if name not in FUNNEL_PARAMS and not _STEP_FILTER.fullmatch(name):
            errors.append(
                field_error(
                    name[:100],
                    "is not a parameter of this page (it takes: "
                    f"{', '.join(FUNNEL_PARAMS)}, and wN.key, wN.op, wN.value)",
                )
            )


def funnel_steps(params: QueryParams) -> list[FunnelStep]:
    """The steps of the funnels form, blank ones left out. Step N of the form (counting
    from 1, blank ones included) has its filters in `wN.key`, `wN.op` and `wN.value`,
    repeated in order for several; a filter without a key is left out."""
    steps: list[FunnelStep] = []
    for n, name in enumerate(params.getlist("step")[:MAX_FORM_STEPS], 1):
        keys, ops, values = (params.getlist(f"w{n}.{part}") for part in ("key", "op", "value"))
        filters = tuple(
            (key.strip(), ops[i] if i < len(ops) else "eq", values[i] if i < len(values) else "")
            for i, key in enumerate(keys[:MAX_FORM_FILTERS])
            if key.strip()
        )
        if name.strip():
            steps.append(FunnelStep(name.strip(), filters))
    return steps
