"""The web analytics figures as SQL, written once for every backend: overview, time
series and breakdowns over the `visits` and `hits` tables (store/visits.py).

Visits count in the range their start falls in, with everything in them (their page
views, their events). Visit attributes (entry page, source, country, ...) filter whole
visits; a `page` filter keeps visits with a view of that page and counts only those
views, an `event` filter keeps visits with such an event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from collector.query.types import EVENT_DIMENSIONS, VISIT_DIMENSIONS, AnalyticsQuery
from collector.store.sql import Cursor, Dialect
from collector.store.visits import ENGAGEMENT_SQL, PAGE_VIEW
from collector.timeutil import iso

Execute = Callable[[str, Sequence[Any]], Cursor]

CURRENT_MS = 5 * 60 * 1000  # "current visitors": an event within the last five minutes
_BUCKET = {"hour": 3_600_000, "day": 86_400_000}
_SAME_VISIT = (
    "h.app_id = v.app_id AND h.visit_start = v.start_ts AND h.person = v.person "
    "AND h.is_bot = v.is_bot"
)
_BOUNCE = "CASE WHEN v.page_views = 1 AND v.events = 1 THEN 1 ELSE 0 END"


class _Where:
    """The conditions on `visits v` for a query and range, with their parameters."""

    def __init__(self, d: Dialect, app_id: str, q: AnalyticsQuery, since: int, until: int):
        m = d.mark
        self.params: list[Any] = [app_id, since, until]
        parts = [f"v.app_id = {m}", f"v.start_ts >= {m}", f"v.start_ts < {m}", "v.events > 0"]
        if not q.include_bots:
            parts.append("v.is_bot = 0")
        self.page: str | None = None
        self.has_page = False
        # Whether anything but the range and bot flag is asked of the visit (a page
        # filter is, unless the hits counted are that page's views: see breakdown).
        self.visit_level = bool(q.filters)
        for name, value in q.filters:
            if name in VISIT_DIMENSIONS:
                if value is None:
                    parts.append(f"v.{name} IS NULL")
                else:
                    parts.append(f"v.{name} = {m}")
                    self.params.append(value)
            elif name == "page":
                self.has_page, self.page = True, value
                path = "h.path IS NULL" if value is None else f"h.path = {m}"
                parts.append(
                    f"EXISTS (SELECT 1 FROM hits h WHERE {_SAME_VISIT} "
                    f"AND h.event = '{PAGE_VIEW}' AND {path})"
                )
                if value is not None:
                    self.params.append(value)
            elif name == "event":
                parts.append(f"EXISTS (SELECT 1 FROM hits h WHERE {_SAME_VISIT} AND h.event = {m})")
                self.params.append(value)
        self.sql = " AND ".join(parts)

    def page_views(self, d: Dialect, params: list[Any]) -> str:
        """A visit's page views that count: all, or the filtered page's."""
        if not self.has_page:
            return "v.page_views"
        if self.page is None:
            path = "h.path IS NULL"
        else:
            path = f"h.path = {d.mark}"
            params.append(self.page)
        return (
            f"(SELECT count(*) FROM hits h WHERE {_SAME_VISIT} "
            f"AND h.event = '{PAGE_VIEW}' AND {path})"
        )


def figures(
    visitors: int, visits: int, page_views: int, bounces: int, duration_ms: int
) -> dict[str, Any]:
    return {
        "unique_visitors": visitors,
        "visits": visits,
        "page_views": page_views,
        "views_per_visit": round(page_views / visits, 4) if visits else 0.0,
        "bounce_rate": round(bounces / visits, 4) if visits else 0.0,
        "visit_duration": round(duration_ms / visits / 1000, 3) if visits else 0.0,
    }


def _totals(
    d: Dialect, run: Execute, app_id: str, q: AnalyticsQuery, since: int, until: int
) -> dict[str, Any]:
    where = _Where(d, app_id, q, since, until)
    params: list[Any] = []
    pv = where.page_views(d, params)
    row = run(
        f"SELECT count(DISTINCT v.person), count(*), coalesce(sum({pv}), 0), "
        f"coalesce(sum({_BOUNCE}), 0), coalesce(sum(v.end_ts - v.start_ts), 0) "
        f"FROM visits v WHERE {where.sql}",
        [*params, *where.params],
    ).fetchone()
    return figures(*(int(x or 0) for x in row))


def overview(d: Dialect, run: Execute, app_id: str, q: AnalyticsQuery, now: int) -> dict[str, Any]:
    """The figures for the range and for the period of the same length just before it,
    the time series, and the visitors of the last five minutes."""
    span = q.until - q.since
    where = _Where(d, app_id, q, q.since, q.until)
    size = _BUCKET[q.interval]
    params: list[Any] = []
    pv = where.page_views(d, params)
    buckets: dict[int, tuple[int, int, int]] = {}
    for bucket, visitors, visits, views in run(
        f"SELECT (v.start_ts / {size}) * {size} AS b, count(DISTINCT v.person), count(*), "
        f"coalesce(sum({pv}), 0) FROM visits v WHERE {where.sql} GROUP BY b",
        [*params, *where.params],
    ):
        buckets[int(bucket)] = (int(visitors), int(visits), int(views))
    series = []
    for start in range((q.since // size) * size, q.until, size):
        visitors, visits, views = buckets.get(start, (0, 0, 0))
        series.append(
            {"t": iso(start), "unique_visitors": visitors, "visits": visits, "page_views": views}
        )
    bots = "" if q.include_bots else " AND is_bot = 0"
    m = d.mark
    current = run(
        f"SELECT count(DISTINCT person) FROM events WHERE app_id = {m} AND ts >= {m} "
        f"AND ts <= {m} AND event NOT IN ({ENGAGEMENT_SQL}){bots}",
        [app_id, now - CURRENT_MS, now],
    ).fetchone()
    return {
        "since": iso(q.since),
        "until": iso(q.until),
        "interval": q.interval,
        "include_bots": q.include_bots,
        "filters": [{"dimension": n, "value": v} for n, v in q.filters],
        "results": _totals(d, run, app_id, q, q.since, q.until),
        "previous": {
            "since": iso(q.since - span),
            "until": iso(q.since),
            **_totals(d, run, app_id, q, q.since - span, q.since),
        },
        "current_visitors": int(current[0] or 0),
        "series": series,
    }


def breakdown(d: Dialect, run: Execute, app_id: str, q: AnalyticsQuery, by: str) -> dict[str, Any]:
    """Visitors, visits, page views and events per value of a dimension, the most
    visitors first (then visits, then the value in code point order, unset last)."""
    where = _Where(d, app_id, q, q.since, q.until)
    m = d.mark
    params: list[Any] = []
    if by in VISIT_DIMENSIONS:
        pv = where.page_views(d, params)
        sql = (
            f"SELECT v.{by} AS value, count(DISTINCT v.person) AS visitors, count(*) AS visits, "
            f"coalesce(sum({pv}), 0) AS page_views, coalesce(sum(v.events), 0) AS events "
            f"FROM visits v WHERE {where.sql} GROUP BY v.{by}"
        )
        params.extend(where.params)
    else:
        assert by in EVENT_DIMENSIONS
        column = "h.path" if by == "page" else "h.event"
        hit_filter = (
            f"h.event = '{PAGE_VIEW}'" if by == "page" else f"h.event NOT IN ({ENGAGEMENT_SQL})"
        )
        if where.has_page:
            hit_filter += " AND h.path IS NULL" if where.page is None else f" AND h.path = {m}"
            if where.page is not None:
                params.append(where.page)
        head = (
            f"SELECT {column} AS value, count(DISTINCT h.person) AS visitors, "
            f"count(DISTINCT h.person || '|' || h.visit_start) AS visits, "
            f"sum(CASE WHEN h.event = '{PAGE_VIEW}' THEN 1 ELSE 0 END) AS page_views, "
            f"count(*) AS events FROM hits h"
        )
        if where.visit_level and not (by == "page" and all(n == "page" for n, _ in q.filters)):
            sql = f"{head} JOIN visits v ON {_SAME_VISIT} WHERE {hit_filter} AND {where.sql}"
            params.extend(where.params)
        else:
            # Nothing to ask of the visit but its start and bot flag, which the hit has:
            # one contiguous stretch of hits, no join. (A visit of engagement alone has no
            # hit these filters keep.)
            bots = "" if q.include_bots else " AND h.is_bot = 0"
            sql = (
                f"{head} WHERE h.app_id = {m} AND h.visit_start >= {m} "
                f"AND h.visit_start < {m}{bots} AND {hit_filter}"
            )
            params[:0] = [app_id, q.since, q.until]
        sql += f" GROUP BY {column}"
    # Wrapped: PostgreSQL orders by an output column only when it stands alone.
    rows = run(
        f"SELECT * FROM ({sql}) t ORDER BY visitors DESC, visits DESC, value IS NULL, "
        f"value{d.collate} LIMIT {m}",
        [*params, q.limit],
    )
    return {
        "by": by,
        "since": iso(q.since),
        "until": iso(q.until),
        "include_bots": q.include_bots,
        "filters": [{"dimension": n, "value": v} for n, v in q.filters],
        "results": [
            {
                "value": value,
                "visitors": int(visitors),
                "visits": int(visits),
                "page_views": int(page_views or 0),
                "events": int(events or 0),
            }
            for value, visitors, visits, page_views, events in rows
        ],
    }
