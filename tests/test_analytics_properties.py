"""Property-based tests of the web analytics figures: random traffic (page views, the
SDK's engagement events, custom events, logins mid-visit, bots, late events, a deleted
user) written through the real write path in random batches, then the overview and
every breakdown compared with a plain-Python reference that knows nothing of SQL.

Times cluster on the edges: gaps of exactly 30 minutes and just under, visits across
midnight, ranges that start or end on a visit's first event."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.models import Event
from collector.query.types import DIMENSIONS, VISIT_DIMENSIONS, AnalyticsQuery
from collector.store import Store, open_store
from tests.conftest import BACKENDS
from tests.factories import ev

SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MIN = 60_000
GAP = 30 * MIN
MIDNIGHT = 1_790_035_200_000  # 2026-09-22T00:00:00Z
# Offsets from midnight: a visit across it, gaps of exactly 30 minutes and 1 ms less.
OFFSETS = (-40 * MIN, -30 * MIN, -GAP + 1, -MIN, 0, 1, 29 * MIN, 30 * MIN, 59 * MIN, 3 * 60 * MIN)
TIMES = tuple(MIDNIGHT + o for o in OFFSETS)
EVERYTHING = AnalyticsQuery(since=MIDNIGHT - 2 * 86_400_000, until=MIDNIGHT + 2 * 86_400_000)
BOUNDS = (
    MIDNIGHT - 24 * 60 * MIN,
    MIDNIGHT - 30 * MIN,
    MIDNIGHT,
    MIDNIGHT + 1,
    MIDNIGHT + 24 * 60 * MIN,
)
USERS = ("u0", "u1")
ANONS = ("x0", "x1", "x2")
PAGES = ("/", "/pricing", "/docs")
REFERRERS = (None, "www.google.com", "news.ycombinator.com")
COUNTRIES = ("US", "DE", None)
BROWSERS = ("Chrome", "Firefox")


@dataclass
class Write:
    name: str  # page_viewed, page_left, signup, or identify
    ts: int
    user: str | None
    anon: str | None
    bot: bool
    context: dict[str, Any]
    tie: int  # orders events of the same time, as their ids do


@st.composite
def writes(draw: st.DrawFn) -> Write:
    user = draw(st.sampled_from((None, None, *USERS)))
    anon = draw(st.sampled_from(ANONS)) if user is None else draw(st.sampled_from((None, *ANONS)))
    name = draw(st.sampled_from(("page_viewed", "page_viewed", "page_left", "signup", "identify")))
    if name == "identify" and user is None:
        name = "page_viewed"
    referrer = draw(st.sampled_from(REFERRERS))
    context: dict[str, Any] = {
        "path": draw(st.sampled_from(PAGES)),
        "channel": "Organic Search" if referrer == "www.google.com" else
                   ("Referral" if referrer else "Direct"),
        "country": draw(st.sampled_from(COUNTRIES)),
        "browser": draw(st.sampled_from(BROWSERS)),
        "device_type": "desktop",
    }  # fmt: skip
    if referrer:
        context["referrer_host"] = referrer
    if draw(st.integers(0, 3)) == 0:
        context["utm_campaign"] = "launch"
    bot = draw(st.integers(0, 4)) == 0
    tie = draw(st.integers(0, 9))
    return Write(name, draw(st.sampled_from(TIMES)), user, anon, bot, context, tie)


@dataclass
class World:
    batches: list[list[Write]]
    deleted: str | None


@st.composite
def worlds(draw: st.DrawFn) -> World:
    items = draw(st.lists(writes(), min_size=4, max_size=25))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=3)))
    bounds = [0, *cuts, len(items)]
    batches = [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return World(batches, draw(st.sampled_from((None, None, None, *USERS))))


@st.composite
def queries(draw: st.DrawFn) -> AnalyticsQuery:
    since, until = sorted(
        draw(st.lists(st.sampled_from(BOUNDS), min_size=2, max_size=2, unique=True))
    )
    filters: list[tuple[str, str | None]] = []
    for name in draw(
        st.lists(
            st.sampled_from(
                ("page", "event", "referrer", "country", "browser", "entry_page", "utm_campaign")
            ),
            max_size=2,
            unique=True,
        )
    ):
        if name in ("page", "entry_page"):
            value: str | None = draw(st.sampled_from(PAGES))
        elif name == "event":
            value = draw(st.sampled_from(("signup", "page_viewed")))
        elif name == "referrer":
            value = draw(st.sampled_from(REFERRERS))
        elif name == "country":
            value = draw(st.sampled_from(COUNTRIES))
        elif name == "utm_campaign":
            value = draw(st.sampled_from(("launch", None)))
        else:
            value = draw(st.sampled_from(BROWSERS))
        filters.append((name, value))
    return AnalyticsQuery(
        since=since, until=until, interval=draw(st.sampled_from(("hour", "day"))),
        filters=tuple(filters), include_bots=draw(st.booleans()), limit=100,
    )  # fmt: skip


# The reference ------------------------------------------------------------------------


@dataclass
class Stored:
    id: str
    name: str
    ts: int
    person: str
    bot: bool
    context: dict[str, Any]


@dataclass
class RefVisit:
    person: str
    bot: bool
    start: int
    end: int
    events: list[Stored]

    @property
    def counted(self) -> list[Stored]:
        return [e for e in self.events if e.name != "page_left"]

    @property
    def views(self) -> list[Stored]:
        return [e for e in self.events if e.name == "page_viewed"]

    def attribute(self, name: str) -> str | None:
        views = self.views
        if name == "entry_page":
            return views[0].context["path"] if views else None
        if name == "exit_page":
            return views[-1].context["path"] if views else None
        landing = views[0] if views else self.counted[0]
        key = {"referrer": "referrer_host", "device": "device_type"}.get(name, name)
        value = landing.context.get(key)
        return value if isinstance(value, str) and value else None


def stored_events(world: World, events: list[list[Event]]) -> list[Stored]:
    links: dict[str, str] = {}
    for w in itertools.chain.from_iterable(world.batches):
        if w.user is not None and w.anon is not None:
            links.setdefault(w.anon, w.user)
    out: list[Stored] = []
    for w, e in zip(
        itertools.chain.from_iterable(world.batches),
        itertools.chain.from_iterable(events),
        strict=True,
    ):
        if w.name == "identify":
            continue
        person = w.user or links.get(w.anon or "") or f"anon:{w.anon}"
        if world.deleted is not None and (w.user == world.deleted or person == world.deleted):
            continue
        out.append(Stored(e.id, w.name, w.ts, person, w.bot, w.context))
    return out


def sessionize(rows: list[Stored]) -> list[RefVisit]:
    groups: dict[tuple[str, bool], list[Stored]] = {}
    for row in rows:
        groups.setdefault((row.person, row.bot), []).append(row)
    visits: list[RefVisit] = []
    for (person, bot), group in groups.items():
        group.sort(key=lambda r: (r.ts, r.id))
        current: RefVisit | None = None
        for row in group:
            if current is None or row.ts - current.end >= GAP:
                current = RefVisit(person, bot, row.ts, row.ts, [])
                visits.append(current)
            current.end = row.ts
            current.events.append(row)
    return [v for v in visits if v.counted]  # engagement alone is not a visit


def selected(visits: list[RefVisit], q: AnalyticsQuery, since: int, until: int) -> list[RefVisit]:
    out = []
    for v in visits:
        if not since <= v.start < until or (v.bot and not q.include_bots):
            continue
        ok = True
        for name, value in q.filters:
            if name in VISIT_DIMENSIONS:
                ok = ok and v.attribute(name) == value
            elif name == "page":
                ok = ok and any(e.context["path"] == value for e in v.views)
            else:
                ok = ok and any(e.name == value for e in v.events)
        if ok:
            out.append(v)
    return out


def page_filter(q: AnalyticsQuery) -> tuple[bool, str | None]:
    for name, value in q.filters:
        if name == "page":
            return True, value
    return False, None


def counted_views(v: RefVisit, q: AnalyticsQuery) -> int:
    has, page = page_filter(q)
    return sum(1 for e in v.views if not has or e.context["path"] == page)


def totals(visits: list[RefVisit], q: AnalyticsQuery, since: int, until: int) -> dict[str, Any]:
    chosen = selected(visits, q, since, until)
    n = len(chosen)
    views = sum(counted_views(v, q) for v in chosen)
    bounces = sum(1 for v in chosen if len(v.views) == 1 and len(v.counted) == 1)
    duration = sum(v.end - v.start for v in chosen)
    return {
        "unique_visitors": len({v.person for v in chosen}),
        "visits": n,
        "page_views": views,
        "views_per_visit": pytest.approx(views / n if n else 0.0, abs=1e-4),
        "bounce_rate": pytest.approx(bounces / n if n else 0.0, abs=1e-4),
        "visit_duration": pytest.approx(duration / n / 1000 if n else 0.0, abs=1e-3),
    }


def breakdown(visits: list[RefVisit], q: AnalyticsQuery, by: str) -> dict[Any, dict[str, int]]:
    chosen = selected(visits, q, q.since, q.until)
    rows: dict[Any, dict[str, Any]] = {}

    def add(value: Any, person: str, visit: RefVisit, views: int, events: int) -> None:
        row = rows.setdefault(
            value, {"visitors": set(), "visits": set(), "page_views": 0, "events": 0}
        )
        row["visitors"].add(person)
        row["visits"].add((visit.person, visit.bot, visit.start))
        row["page_views"] += views
        row["events"] += events

    has, page = page_filter(q)
    for v in chosen:
        if by in VISIT_DIMENSIONS:
            add(v.attribute(by), v.person, v, counted_views(v, q), len(v.counted))
            continue
        for e in v.counted:
            if by == "page" and e.name != "page_viewed":
                continue
            if has and e.context["path"] != page:
                continue
            value = e.context["path"] if by == "page" else e.name
            add(value, v.person, v, 1 if e.name == "page_viewed" else 0, 1)
    return {
        value: {"visitors": len(r["visitors"]), "visits": len(r["visits"]),
                "page_views": r["page_views"], "events": r["events"]}
        for value, r in rows.items()
    }  # fmt: skip


# The store ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    db = (
        cluster.create_database()
        if cluster is not None
        else str(tmp_path_factory.mktemp("analytics") / "analytics.db")
    )
    store = open_store(db)
    store.migrate()
    yield store
    store.close()
    if cluster is not None:
        cluster.drop_database(db)


def build(world: World, store: Store) -> tuple[str, list[list[Event]]]:
    app_id = store.create_app("Analytics", ["http://localhost"], {}).app_id
    written = []
    n = 0
    for batch in world.batches:
        events = []
        for w in batch:
            e = ev(
                app_id, w.name, w.ts, user=w.user, anon=w.anon, bot=w.bot, context=dict(w.context)
            )
            # Ids of our own, unique and in a drawn order among equal times: the same
            # example stores the same rows on every run.
            events.append(dataclasses.replace(e, id=f"evt_{w.ts:013d}{w.tie}{n:04d}"))
            n += 1
        store.write(events)
        written.append(events)
        # Asked between batches, the figures' column cache holds days that the later
        # batches (late events, logins) and the deletion change: the final answers then
        # prove that every such change reaches the cache.
        store.analytics_overview(app_id, EVERYTHING)
    if world.deleted is not None:
        store.delete_user(app_id, world.deleted)
    return app_id, written


@given(world=worlds(), q=queries(), by=st.sampled_from(DIMENSIONS))
@SETTINGS
def test_figures_match_the_reference(
    shared: Store, world: World, q: AnalyticsQuery, by: str
) -> None:
    app_id, written = build(world, shared)
    visits = sessionize(stored_events(world, written))

    answer = shared.analytics_overview(app_id, q)
    assert {k: answer["results"][k] for k in totals(visits, q, q.since, q.until)} == totals(
        visits, q, q.since, q.until
    )
    span = q.until - q.since
    previous = totals(visits, q, q.since - span, q.since)
    assert {k: answer["previous"][k] for k in previous} == previous
    assert sum(p["visits"] for p in answer["series"]) == answer["results"]["visits"]
    assert sum(p["page_views"] for p in answer["series"]) == answer["results"]["page_views"]

    got = shared.analytics_breakdown(app_id, q, by)
    actual = {
        r["value"]: {k: r[k] for k in ("visitors", "visits", "page_views", "events")}
        for r in got["results"]
    }
    assert actual == breakdown(visits, q, by)
    order = [(-r["visitors"], -r["visits"]) for r in got["results"]]
    assert order == sorted(order)
