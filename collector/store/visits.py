"""Visits, decided once for every backend: what a visit is, and how indexing keeps the
`visits` and `hits` tables true as events arrive, late events land between others, and
anonymous visitors turn out to be users.

A visit is one person's events with gaps under 30 minutes (`GAP_MS`). Bot-flagged
events form visits of their own (the key is (app, person, is_bot)), so excluding bots
removes whole visits and every event in them. A visit's entry page, source, country,
browser, OS and device are its landing event's: the first page view, else the first
event. It bounces when it holds one page view and no other event; the SDK's engagement
measurement (`page_left`) counts for the duration and the gaps, never as an event. A
stretch of nothing but engagement is kept (a later page view may join it) but is not
a visit: queries count visits with `events > 0`.

`hits` is a narrow copy of every event (time, id, name, page path) with the start of
the visit it belongs to: the page and event figures read it instead of the events'
JSON. Both tables are derived: `rebuild` recomputes them from the events.

Keeping them is cheap in the usual case, events arriving after the person's last
visit: the last visit is extended or new ones begin, without reading any event back.
An event earlier than the last visit's end, or a person moved by a login, recomputes
that person's visits around it from the hits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit

import orjson

from collector.store import core

GAP_MS: int = 30 * 60 * 1000
PAGE_VIEW: str = "page_viewed"
ENGAGEMENT: frozenset[str] = frozenset({"page_left"})
# The engagement event names as an SQL list (constants of ours, never user input).
ENGAGEMENT_SQL: str = ", ".join(f"'{name}'" for name in sorted(ENGAGEMENT))

# (app_id, person, is_bot)
Key: TypeAlias = tuple[str, str, int]

# The landing event's attributes, in this order (visits' columns after the counts).
ATTRIBUTES: tuple[str, ...] = (
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
# Context keys the attributes are read from: their own names, but for these two.
_CONTEXT_KEYS: tuple[str, ...] = tuple(
    {"referrer": "referrer_host", "device": "device_type"}.get(a, a) for a in ATTRIBUTES
)
VISIT_COLUMNS: str = (
    "app_id, person, is_bot, start_ts, end_ts, page_views, events, entry_page, exit_page, "
    "landing_id, " + ", ".join(ATTRIBUTES)
)
HIT_COLUMNS: str = "app_id, visit_start, person, is_bot, ts, id, event, path"

# `visit_days` holds a version per (app, UTC day of a visit's start) that every change
# to the visits starting that day, or to their hits, raises in the same transaction:
# the figures' column cache (store/columns.py) reloads a day only when its version
# moved. A version is never lowered or deleted, so one seen once always means the same
# rows.
DAY_MS: int = 86_400_000
VISIT_DAYS_SCHEMA: str = (
    "CREATE TABLE IF NOT EXISTS visit_days (app_id TEXT NOT NULL, day INTEGER NOT NULL, "
    "version INTEGER NOT NULL, PRIMARY KEY (app_id, day))"
)
# Raises one (app, day)'s version, or creates it at 1; marks as the backend's.
BUMP_DAY_SQL: str = (
    "INSERT INTO visit_days (app_id, day, version) VALUES ({m}, {m}, 1) "
    "ON CONFLICT (app_id, day) DO UPDATE SET version = visit_days.version + 1"
)


def days_of(app_starts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """The distinct (app, day) of (app, visit start) pairs, sorted (a fixed lock order)."""
    return sorted({(app_id, start // DAY_MS) for app_id, start in app_starts})


# (ts, event id, event name, page path): an event as visits see it. A plain tuple (not
# a NamedTuple, whose construction costs more than the rest of indexing a hit).
Hit: TypeAlias = tuple[int, str, str, str | None]


# (end, page views, events, exit page, app_id, start, person, is_bot): a stored visit
# extended (`VisitPrimitives.extend_visits`), the new values first and its key after.
Extension: TypeAlias = tuple[int, int, int, str | None, str, int, str, int]


# A hit as stored: (app_id, visit_start, person, is_bot, ts, id, event, path).
HitRow: TypeAlias = tuple[str, int, str, int, int, str, str, str | None]


@dataclass(slots=True)
class Visit:
    key: Key
    start: int
    end: int
    page_views: int = 0
    events: int = 0
    entry_page: str | None = None
    exit_page: str | None = None
    landing_id: str | None = None
    attributes: tuple[str | None, ...] = (None,) * len(ATTRIBUTES)
    landing_changed: bool = False  # the attributes must be read from landing_id's event

    def extension(self) -> Extension:
        """What extending a stored visit changes, when its landing stays: the rest of its
        row (entry page, landing, attributes) is as stored."""
        app_id, person, is_bot = self.key
        return (
            self.end,
            self.page_views,
            self.events,
            self.exit_page,
            app_id,
            self.start,
            person,
            is_bot,
        )

    def row(self) -> tuple[Any, ...]:
        app_id, person, is_bot = self.key
        return (
            app_id,
            person,
            is_bot,
            self.start,
            self.end,
            self.page_views,
            self.events,
            self.entry_page,
            self.exit_page,
            self.landing_id,
            *self.attributes,
        )


def visit_from_row(row: Sequence[Any]) -> Visit:
    """A stored visits row (VISIT_COLUMNS order) back into a Visit."""
    return Visit(
        (row[0], row[1], int(row[2])),
        int(row[3]),
        int(row[4]),
        int(row[5]),
        int(row[6]),
        row[7],
        row[8],
        row[9],
        tuple(row[10 : 10 + len(ATTRIBUTES)]),
    )


def path_of(context: dict[str, Any]) -> str | None:
    """The page path of an event's context: `path`, a Segment-style `page.path`, or the
    path of its `url`."""
    path = context.get("path")
    if isinstance(path, str) and path:
        return path[:1024]
    page = context.get("page")
    if isinstance(page, dict):
        nested = page.get("path")
        if isinstance(nested, str) and nested:
            return nested[:1024]
    url = context.get("url")
    if not isinstance(url, str) and isinstance(page, dict):
        url = page.get("url")
    if isinstance(url, str) and url:
        try:
            return urlsplit(url).path[:1024] or "/"
        except ValueError:
            return None
    return None


def attributes_of(context: dict[str, Any]) -> tuple[str | None, ...]:
    values: list[str | None] = []
    for key in _CONTEXT_KEYS:
        value = context.get(key)
        values.append(value if isinstance(value, str) and value else None)
    return tuple(values)


def context_of(text: str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if not text:
        return {}
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {}


def sessionize(key: Key, hits: Sequence[Hit], seed: Visit | None = None) -> list[Visit]:
    """`hits` (sorted by time, then id) into visits. `seed`, the key's last stored visit,
    ends before the first hit: the hits extend it or begin new visits after it.
    Returns the visits the hits fall in, the seed first when extended."""
    visits: list[Visit] = []
    current = seed
    for ts, event_id, event, path in hits:
        if current is None or ts - current.end >= GAP_MS:
            current = Visit(key, ts, ts)
            visits.append(current)
        elif current is seed and not visits:
            visits.append(current)
        current.end = max(current.end, ts)
        if event in ENGAGEMENT:
            continue
        current.events += 1
        if current.landing_id is None:
            current.landing_id = event_id
            current.landing_changed = True
        if event == PAGE_VIEW:
            if current.page_views == 0:
                # The first page view is the landing, whatever came before it.
                current.entry_page = path
                current.landing_id = event_id
                current.landing_changed = True
            current.page_views += 1
            current.exit_page = path
    return visits


class VisitPrimitives(Protocol):
    """What a backend supplies, each run inside the indexing transaction."""

    def last_visits(self, keys: Sequence[Key]) -> dict[Key, Visit]:
        """Each key's visit with the latest start, for those that have one."""
        ...

    def visits_touching(self, key: Key, lo: int, hi: int) -> list[Visit]:
        """The key's visits with end > lo and start < hi."""
        ...

    def hits_of(self, key: Key, starts: Sequence[int]) -> list[Hit]:
        """The hits of the key's visits that start at `starts`."""
        ...

    def delete_visits(self, key: Key, starts: Sequence[int]) -> None:
        """Delete the key's visits that start at `starts`, and their hits."""
        ...

    def take_person(self, app_id: str, person: str) -> dict[int, tuple[list[Hit], tuple[int, int]]]:
        """Delete the person's visits and hits; return, by bot flag, the hits and the
        span (first start, last end) of the visits."""
        ...

    def engagement_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        """The key's stored engagement events with lo <= ts <= hi, as hits."""
        ...

    def landing_contexts(self, events: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        """(app_id, person, event id) → {event id: its context (JSON text or a dict)}."""
        ...

    def upsert_visits(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert, or replace the row of the same (app, person, is_bot, start)."""
        ...

    def extend_visits(self, rows: Sequence[Extension]) -> None:
        """Set the end, counts and exit page of stored visits (`Visit.extension`)."""
        ...

    def insert_hits(self, rows: Sequence[HitRow]) -> None: ...
    def event_hits(self, key: Key, lo: int, hi: int) -> list[Hit]:
        """The key's stored events with lo <= ts <= hi, as hits."""
        ...

    def visits_straddling(self, app_id: str, cutoff: int) -> list[tuple[Key, int]]:
        """(key, end) of each visit that starts before `cutoff` and ends at or after it."""
        ...

    def delete_before(self, app_id: str, cutoff: int) -> None:
        """Delete the app's visits that start before `cutoff`, with their hits."""
        ...


def index(tx: VisitPrimitives, rows: Sequence[core.EventRow]) -> None:
    """Bring visits and hits up to date with newly stored event rows."""
    by_key: dict[Key, list[Hit]] = {}
    contexts: dict[str, Any] = {}
    for row in rows:
        context = context_of(row[12])
        contexts[row[0]] = context
        hit: Hit = (row[7], row[0], row[3], path_of(context))
        by_key.setdefault((row[1], row[6], row[13]), []).append(hit)
    if not by_key:
        return
    keys = sorted(by_key)
    last = tx.last_visits(keys)
    visits: list[Visit] = []
    extended: list[Extension] = []
    hit_rows: list[HitRow] = []
    slow: list[tuple[Key, list[Hit]]] = []
    for key in keys:
        hits = sorted(by_key[key])
        seed = last.get(key)
        if seed is not None and hits[0][0] <= seed.end and not _follows(seed, hits):
            # Not after what is stored (a tie too: the order of equal times is the ids',
            # which may put it before the last stored hit): recompute around it.
            slow.append((key, hits))
            continue
        made = sessionize(key, hits, seed)
        for visit in made:
            # The usual case, a stored visit going on with the same landing: only its
            # end, counts and exit page change, so only they are written (the hottest
            # write of indexing).
            if visit is seed and not visit.landing_changed:
                extended.append(visit.extension())
            else:
                visits.append(visit)
        hit_rows.extend(_hit_rows(key, hits, made))
    _fill_attributes(tx, visits, contexts)
    if visits:
        tx.upsert_visits([v.row() for v in visits])
    if extended:
        tx.extend_visits(extended)
    if hit_rows:
        tx.insert_hits(hit_rows)
    for key, hits in slow:
        recompute(tx, key, hits)


def _follows(seed: Visit, hits: Sequence[Hit]) -> bool:
    """Whether `hits` (sorted), the first of them at the same time as the end of `seed`,
    extend it exactly as if they came after its hits, whatever the ids of the stored hits
    they tie with: none of them at that time is a page view (which could be the visit's
    entry or exit, by id), and the seed's landing comes before each of them that is not
    engagement (landing_id < id puts it first, at an equal time or an earlier one).
    A batch of events without a timestamp has one time (its arrival) for all of them, and
    the indexer takes it in chunks: recomputing each person's visit at every chunk's
    boundary tripled the cost of indexing such a batch."""
    if hits[0][0] != seed.end:
        return False
    landing = seed.landing_id
    for ts, event_id, event, _ in hits:
        if ts != seed.end:
            break
        if event == PAGE_VIEW:
            return False
        if event in ENGAGEMENT:
            continue
        if seed.page_views == 0 and landing is not None and event_id < landing:
            return False
    return True


def _hit_rows(key: Key, hits: Sequence[Hit], visits: Sequence[Visit] | None) -> list[HitRow]:
    """Hit rows with the start of the visit each falls in (the visits in order; None:
    not known yet, `recompute` sets it). Engagement is not kept as hits: it counts only
    for the visits' ends, and the rare recomputation reads it from the events."""
    app_id, person, is_bot = key
    out: list[HitRow] = []
    i = 0
    for ts, event_id, event, path in hits:
        start = ts
        if visits is not None:
            while i + 1 < len(visits) and visits[i + 1].start <= ts:
                i += 1
            start = visits[i].start
        if event not in ENGAGEMENT:
            out.append((app_id, start, person, is_bot, ts, event_id, event, path))
    return out


def _fill_attributes(tx: VisitPrimitives, visits: Iterable[Visit], known: dict[str, Any]) -> None:
    """Read the landing attributes of the visits whose landing changed."""
    changed = [v for v in visits if v.landing_changed and v.landing_id is not None]
    missing = sorted(
        {(v.key[0], v.key[1], v.landing_id or "") for v in changed if v.landing_id not in known}
    )
    if missing:
        known.update(tx.landing_contexts(missing))
    for visit in changed:
        visit.attributes = attributes_of(context_of(known.get(visit.landing_id or "")))
        visit.landing_changed = False


def recompute(
    tx: VisitPrimitives, key: Key, new: Sequence[Hit], span: tuple[int, int] | None = None
) -> None:
    """Sessionize again, with the `new` hits (not stored as hits yet), the key's visits
    that reach within a gap of them or of `span`. Visits further out are a gap or more
    away from everything that changes, so they stand."""
    times = [h[0] for h in new]
    if span is not None:
        times.extend(span)
    lo, hi = min(times), max(times)
    old = tx.visits_touching(key, lo - GAP_MS, hi + GAP_MS)
    if old:
        lo, hi = min(lo, *(v.start for v in old)), max(hi, *(v.end for v in old))
    starts = [v.start for v in old]
    known = {h[1] for h in new}
    engagement = [h for h in tx.engagement_hits(key, lo, hi) if h[1] not in known]
    _replace(tx, key, starts, sorted([*tx.hits_of(key, starts), *new, *engagement]))


def _replace(tx: VisitPrimitives, key: Key, starts: Sequence[int], hits: list[Hit]) -> None:
    """The key's visits that start at `starts` (and their hits) replaced by the visits of
    `hits`, sorted."""
    if starts:
        tx.delete_visits(key, starts)
    made = sessionize(key, hits)
    _fill_attributes(tx, made, {})
    if made:
        tx.upsert_visits([v.row() for v in made])
        tx.insert_hits(_hit_rows(key, hits, made))


def move(tx: VisitPrimitives, moves: Sequence[core.Move]) -> None:
    """Persons merged into others (a login, an alias): their hits join the new person's
    and the visits around them are recomputed (one visit where the two overlapped)."""
    for new, app_id, old in sorted(moves):
        for is_bot, (hits, span) in sorted(tx.take_person(app_id, old).items()):
            recompute(tx, (app_id, new, is_bot), hits, span)


def refresh(tx: VisitPrimitives, windows: Iterable[tuple[Key, int, int]]) -> None:
    """After events were deleted from these (key, first ts, last ts) windows: the visits
    around them are sessionized again from the events left."""
    for key, lo, hi in windows:
        old = tx.visits_touching(key, lo - GAP_MS, hi + GAP_MS)
        if old:
            lo, hi = min(lo, *(v.start for v in old)), max(hi, *(v.end for v in old))
        _replace(tx, key, [v.start for v in old], sorted(tx.event_hits(key, lo, hi)))


def purge(tx: VisitPrimitives, app_id: str, cutoff: int) -> None:
    """After the app's events before `cutoff` were deleted: a visit that began before it
    and goes on after it is sessionized again from what is left."""
    straddling = tx.visits_straddling(app_id, cutoff)
    tx.delete_before(app_id, cutoff)
    refresh(tx, [(key, cutoff, end) for key, end in straddling])


# (app_id, person, is_bot, ts, id, event, context): an event as `rebuild` reads it.
EventFacts: TypeAlias = tuple[str, str, int, int, str, str, Any]


def rebuild(tx: VisitPrimitives, events: Iterable[EventFacts]) -> int:
    """Visits and hits from stored events sorted by (app, person, is_bot, ts, id), into
    empty tables (a migration, a repair). Returns the visits made."""
    made = 0

    def flush(key: Key, hits: list[Hit], contexts: dict[str, Any]) -> int:
        visits = sessionize(key, hits)
        _fill_attributes(tx, visits, contexts)
        tx.upsert_visits([v.row() for v in visits])
        tx.insert_hits(_hit_rows(key, hits, visits))
        return len(visits)

    key: Key | None = None
    hits: list[Hit] = []
    contexts: dict[str, Any] = {}
    for app_id, person, is_bot, ts, event_id, event, context in events:
        this = (app_id, person, int(is_bot))
        if this != key:
            if key is not None:
                made += flush(key, hits, contexts)
            key, hits, contexts = this, [], {}
        parsed = context_of(context)
        contexts[event_id] = parsed
        hits.append((int(ts), event_id, event, path_of(parsed)))
    if key is not None:
        made += flush(key, hits, contexts)
    return made
