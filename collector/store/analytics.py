"""The web analytics figures, written once for every backend: overview, time series and
breakdowns, computed over the visits and hits of store/visits.py as numpy columns
(store/columns.py reads and caches them; why, it says).

Visits count in the range their start falls in, with everything in them (their page
views, their events). Visit attributes (entry page, source, country, ...) filter whole
visits; a `page` filter keeps visits with a view of that page and counts only those
views, an `event` filter keeps visits with such an event."""

from __future__ import annotations

from typing import Any

import numpy as np

from collector.query.types import EVENT_DIMENSIONS, VISIT_DIMENSIONS, AnalyticsQuery
from collector.store.columns import ColumnCache, Execute, Frame
from collector.store.sql import Dialect
from collector.store.visits import ENGAGEMENT_SQL, PAGE_VIEW
from collector.timeutil import iso

CURRENT_MS = 5 * 60 * 1000  # "current visitors": an event within the last five minutes
_BUCKET = {"hour": 3_600_000, "day": 86_400_000}
# A group × item bitmap up to this many cells (bytes); past it, distinct pairs by sorting.
_BITMAP_CELLS = 64 * 1024 * 1024


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


def distinct_per_group(groups: np.ndarray, items: np.ndarray, n_groups: int) -> np.ndarray:
    """How many distinct items each group code 0..n_groups-1 has, from (group, item)
    pairs (both non-negative integer arrays)."""
    if len(items) == 0:
        return np.zeros(n_groups, np.int64)
    n_items = int(items.max()) + 1
    if n_groups * n_items <= _BITMAP_CELLS:
        seen = np.zeros(n_groups * n_items, dtype=bool)
        seen[groups.astype(np.int64) * n_items + items] = True
        counts: np.ndarray = seen.reshape(n_groups, n_items).sum(axis=1)
        return counts
    pairs = np.unique(groups.astype(np.int64) * n_items + items)
    return np.bincount(pairs // n_items, minlength=n_groups)


def _distinct(items: np.ndarray) -> int:
    if len(items) == 0:
        return 0
    seen = np.zeros(int(items.max()) + 1, dtype=bool)
    seen[items] = True
    return int(seen.sum())


class _Selection:
    """The visits (a mask) a query and range keep, and the page views that count."""

    def __init__(self, frame: Frame, q: AnalyticsQuery, since: int, until: int):
        c, codes = frame.columns, frame.codes
        self.columns = c
        mask = (c.start >= since) & (c.start < until)
        if not q.include_bots:
            mask &= ~c.bot
        self.page: int | None = None  # the filtered page's code (the last page filter's)
        for name, value in q.filters:
            if name in VISIT_DIMENSIONS:
                family = codes["path" if name in ("entry_page", "exit_page") else name]
                code = family.get(value)
                if code is None:
                    mask &= False
                else:
                    mask &= c.strings[name] == code
            elif name in EVENT_DIMENSIONS:
                if name == "page":
                    code = codes["path"].get(value)
                    self.page = -1 if code is None else code
                    hits = (c.hit_event == codes["event"].get(PAGE_VIEW, -1)) & (
                        c.hit_path == self.page
                    )
                else:
                    hits = c.hit_event == codes["event"].get(value, -1)
                has = np.zeros(len(c.start), dtype=bool)
                has[c.hit_visit[hits]] = True
                mask &= has
        self.mask = mask
        self.page_views = c.page_views
        if self.page is not None:
            views = (c.hit_event == codes["event"].get(PAGE_VIEW, -1)) & (c.hit_path == self.page)
            self.page_views = np.bincount(c.hit_visit[views], minlength=len(c.start))

    def totals(self) -> dict[str, Any]:
        c, m = self.columns, self.mask
        bounces = (c.page_views[m] == 1) & (c.events[m] == 1)
        return figures(
            _distinct(c.person[m]),
            int(m.sum()),
            int(self.page_views[m].sum()),
            int(bounces.sum()),
            int((c.end[m] - c.start[m]).sum()),
        )


def _current_visitors(d: Dialect, run: Execute, app_id: str, include_bots: bool, now: int) -> int:
    bots = "" if include_bots else " AND is_bot = 0"
    m = d.mark
    row = run(
        f"SELECT count(DISTINCT person) FROM events WHERE app_id = {m} AND ts >= {m} "
        f"AND ts <= {m} AND event NOT IN ({ENGAGEMENT_SQL}){bots}",
        [app_id, now - CURRENT_MS, now],
    ).fetchone()
    return int(row[0] or 0) if row else 0


def overview(
    d: Dialect, run: Execute, cache: ColumnCache, app_id: str, q: AnalyticsQuery, now: int
) -> dict[str, Any]:
    """The figures for the range and for the period of the same length just before it,
    the time series, and the visitors of the last five minutes."""
    span = q.until - q.since
    frame = cache.frame(d, run, app_id, q.since - span, q.until)
    this = _Selection(frame, q, q.since, q.until)
    previous = _Selection(frame, q, q.since - span, q.since)
    c, m = frame.columns, this.mask
    size = _BUCKET[q.interval]
    first = (q.since // size) * size
    n = (q.until - first + size - 1) // size
    bucket = (c.start[m] // size * size - first) // size
    visitors = distinct_per_group(bucket, c.person[m], n)
    visits = np.bincount(bucket, minlength=n)
    views = np.bincount(bucket, weights=this.page_views[m], minlength=n)
    series = [
        {
            "t": iso(first + i * size),
            "unique_visitors": int(visitors[i]),
            "visits": int(visits[i]),
            "page_views": int(views[i]),
        }
        for i in range(n)
    ]
    return {
        "since": iso(q.since),
        "until": iso(q.until),
        "interval": q.interval,
        "include_bots": q.include_bots,
        "filters": [{"dimension": n, "value": v} for n, v in q.filters],
        "results": this.totals(),
        "previous": {"since": iso(q.since - span), "until": iso(q.since), **previous.totals()},
        "current_visitors": _current_visitors(d, run, app_id, q.include_bots, now),
        "series": series,
    }


def breakdown(
    d: Dialect, run: Execute, cache: ColumnCache, app_id: str, q: AnalyticsQuery, by: str
) -> dict[str, Any]:
    """Visitors, visits, page views and events per value of a dimension, the most
    visitors first (then visits, then the value in code point order, unset last)."""
    frame = cache.frame(d, run, app_id, q.since, q.until)
    chosen = _Selection(frame, q, q.since, q.until)
    c, codes, m = frame.columns, frame.codes, chosen.mask
    if by in VISIT_DIMENSIONS:
        names = codes["path" if by in ("entry_page", "exit_page") else by].strings
        groups = c.strings[by][m]
        n = len(names)
        visitors = distinct_per_group(groups, c.person[m], n)
        visits = np.bincount(groups, minlength=n)
        views = np.bincount(groups, weights=chosen.page_views[m], minlength=n)
        events = np.bincount(groups, weights=c.events[m], minlength=n)
    else:
        page_view = codes["event"].get(PAGE_VIEW, -1)
        hits = m[c.hit_visit]
        if by == "page":
            hits &= c.hit_event == page_view
        if chosen.page is not None:
            hits &= c.hit_path == chosen.page
        column = c.hit_path if by == "page" else c.hit_event
        names = codes["path" if by == "page" else "event"].strings
        groups, of_visit = column[hits], c.hit_visit[hits]
        n = len(names)
        visitors = distinct_per_group(groups, c.person[of_visit], n)
        if by == "page":
            visits = np.bincount(c.hit_path[hits & c.hit_first_view], minlength=n)
        elif chosen.page is None:
            visits = np.bincount(c.hit_event[hits & c.hit_first_event], minlength=n)
        else:  # only the events on one page: their first in the visit may be elsewhere
            visits = distinct_per_group(groups, of_visit, n)
        views = np.bincount(groups, weights=c.hit_event[hits] == page_view, minlength=n)
        events = np.bincount(groups, minlength=n)
    return {
        "by": by,
        "since": iso(q.since),
        "until": iso(q.until),
        "include_bots": q.include_bots,
        "filters": [{"dimension": n, "value": v} for n, v in q.filters],
        "results": _rows(names, visitors, visits, views, events, q.limit),
    }


def _rows(
    names: list[str | None],
    visitors: np.ndarray,
    visits: np.ndarray,
    views: np.ndarray,
    events: np.ndarray,
    limit: int,
) -> list[dict[str, Any]]:
    present = np.flatnonzero(events > 0) if len(events) else np.zeros(0, np.int64)
    ranked = sorted(
        present.tolist(),
        key=lambda i: (-int(visitors[i]), -int(visits[i]), names[i] is None, names[i] or ""),
    )
    return [
        {
            "value": names[i],
            "visitors": int(visitors[i]),
            "visits": int(visits[i]),
            "page_views": int(views[i]),
            "events": int(events[i]),
        }
        for i in ranked[:limit]
    ]
