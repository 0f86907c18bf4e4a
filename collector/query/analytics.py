"""The web analytics queries' parameters (GET /v1/analytics/overview and /breakdown, and
the dashboard): a date range, an interval, filters named after dimensions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from collector.errors import FieldError, field_error
from collector.query.segments import parse_limit, parse_time
from collector.query.types import DIMENSIONS, NONE_VALUE, AnalyticsQuery

DAY_MS = 86_400_000
DEFAULT_RANGE_MS = 7 * DAY_MS
MAX_VALUE = 1024
MAX_BUCKETS = 2_000
_BUCKET_MS = {"hour": 3_600_000, "day": DAY_MS}


# Every query parameter parse_analytics_query reads: a filter per dimension, and these.
ANALYTICS_PARAMS: tuple[str, ...] = (
    "since",
    "until",
    "interval",
    "include_bots",
    "limit",
    *DIMENSIONS,
)


def parse_analytics_query(
    params: Mapping[str, str], now: int, errors: list[FieldError], *, series: bool = True
) -> AnalyticsQuery:
    """`since`/`until` ([since, until), ISO 8601 or epoch ms; the last 7 days by
    default), `interval` (hour|day), `include_bots`, `limit`, and one filter per
    dimension named as a parameter (`?page=/pricing&country=US`; `(none)` matches
    visits without the attribute)."""
    until = parse_time(params.get("until"), "until", errors)
    since = parse_time(params.get("since"), "since", errors)
    if until is None:
        until = now if since is None or since < now else since + DEFAULT_RANGE_MS
    if since is None:
        since = until - DEFAULT_RANGE_MS
    if since >= until:
        errors.append(field_error("since", "must be before until"))
    interval = params.get("interval", "day")
    if interval not in _BUCKET_MS:
        errors.append(field_error("interval", 'must be "hour" or "day"'))
        interval = "day"
    elif series and points(since, until, _BUCKET_MS[interval]) > MAX_BUCKETS:
        errors.append(
            field_error("interval", f"gives more than {MAX_BUCKETS} points for this range")
        )
    include = params.get("include_bots")
    include_bots = False
    if include is not None and include.lower() not in ("", "0", "false", "no"):
        if include.lower() in ("1", "true", "yes"):
            include_bots = True
        else:
            errors.append(field_error("include_bots", "must be true or false"))
    filters = parse_filters(params, errors)
    when: Literal["hour", "day"] = "hour" if interval == "hour" else "day"
    return AnalyticsQuery(
        since=since,
        until=until,
        interval=when,
        filters=filters,
        include_bots=include_bots,
        limit=parse_limit(params.get("limit"), "limit", errors),
    )


def points(since: int, until: int, bucket: int) -> int:
    """How many points a series of [since, until) has: its buckets start on whole
    hours or days (UTC), so a range that starts or ends inside one counts it whole."""
    return max(0, (until - 1) // bucket - since // bucket + 1)


def parse_filters(
    params: Mapping[str, str], errors: list[FieldError], *, empty_is_unset: bool = False
) -> tuple[tuple[str, str | None], ...]:
    """One filter per dimension named as a parameter; `(none)` matches visits without
    the attribute. An empty value is an error, or no filter with `empty_is_unset` (a
    form's blank field)."""
    filters: list[tuple[str, str | None]] = []
    for name in DIMENSIONS:
        value = params.get(name)
        if value is None or (empty_is_unset and value == ""):
            continue
        if not value or len(value) > MAX_VALUE:
            errors.append(field_error(name, f"must be 1-{MAX_VALUE} characters"))
        elif value == NONE_VALUE and name != "event":
            filters.append((name, None))
        else:
            filters.append((name, value))
    return tuple(filters)


def parse_dimension(value: str | None, errors: list[FieldError]) -> str:
    if value not in DIMENSIONS:
        errors.append(field_error("by", "must be one of " + ", ".join(DIMENSIONS)))
        return "page"
    return value
