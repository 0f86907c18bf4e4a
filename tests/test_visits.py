"""Visits kept at indexing (store/visits.py), on both backends: the cases a random
example seldom draws — equal times across batches, a late event joining two visits, a
purge through the middle of a visit."""

from __future__ import annotations

import dataclasses

from collector.models import Event
from collector.query.types import AnalyticsQuery
from collector.store import Store
from tests.factories import ev

MIN = 60_000
T0 = 1_790_035_200_000
RANGE = AnalyticsQuery(since=T0 - 86_400_000, until=T0 + 86_400_000)


def page(app_id: str, at: int, path: str, event_id: str, anon: str = "a") -> Event:
    e = ev(app_id, "page_viewed", at, anon=anon, context={"path": path})
    return dataclasses.replace(e, id=event_id)


def exits(store: Store, app_id: str) -> dict[str | None, int]:
    rows = store.analytics_breakdown(app_id, RANGE, "exit_page")["results"]
    return {r["value"]: r["visits"] for r in rows}


def test_an_equal_time_in_a_later_batch_is_ordered_by_id(store: Store) -> None:
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    store.write([page(app_id, T0, "/", "evt_1"), page(app_id, T0 + MIN, "/later", "evt_5")])
    assert exits(store, app_id) == {"/later": 1}
    # Same time as the last stored view, smaller id: it comes before it.
    store.write([page(app_id, T0 + MIN, "/tie", "evt_3")])
    assert exits(store, app_id) == {"/later": 1}


def test_a_late_event_joins_two_visits(store: Store) -> None:
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    store.write([page(app_id, T0, "/", "evt_1"), page(app_id, T0 + 50 * MIN, "/b", "evt_2")])
    assert store.analytics_overview(app_id, RANGE)["results"]["visits"] == 2
    store.write([page(app_id, T0 + 25 * MIN, "/middle", "evt_3")])
    results = store.analytics_overview(app_id, RANGE)["results"]
    assert (results["visits"], results["page_views"]) == (1, 3)
    assert results["visit_duration"] == 50 * 60


def test_a_login_merges_the_visits_of_both_persons(store: Store) -> None:
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    store.write([page(app_id, T0, "/", "evt_1", anon="x")])
    store.write([page(app_id, T0 + 5 * MIN, "/app", "evt_2", anon="y")])
    assert store.analytics_overview(app_id, RANGE)["results"]["unique_visitors"] == 2
    store.write([ev(app_id, "identify", T0 + 6 * MIN, user="u", anon="x"),
                 ev(app_id, "identify", T0 + 6 * MIN, user="u", anon="y")])  # fmt: skip
    results = store.analytics_overview(app_id, RANGE)["results"]
    assert (results["unique_visitors"], results["visits"], results["page_views"]) == (1, 1, 2)


def test_purge_through_a_visit_recomputes_what_is_left(store: Store) -> None:
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    store.write([page(app_id, T0 + i * 10 * MIN, f"/{i}", f"evt_{i}") for i in range(4)])
    store.purge(app_id, T0 + 15 * MIN)
    rows = store.analytics_breakdown(app_id, RANGE, "entry_page")["results"]
    assert [(r["value"], r["page_views"]) for r in rows] == [("/2", 2)]


def test_the_figures_reread_only_the_days_that_changed(store: Store) -> None:
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    day = 86_400_000
    store.write([page(app_id, T0 - day + i * MIN, f"/{i}", f"evt_0{i}") for i in range(3)])
    store.write([page(app_id, T0 + i * MIN, f"/{i}", f"evt_1{i}") for i in range(3)])
    first = store.analytics_overview(app_id, RANGE)["results"]
    assert (first["visits"], first["page_views"]) == (2, 6)
    read = store.columns.days_read
    assert store.analytics_overview(app_id, RANGE)["results"] == first
    assert store.columns.days_read == read  # nothing changed, nothing read again
    store.write([page(app_id, T0 + 10 * MIN, "/more", "evt_2")])
    assert store.analytics_overview(app_id, RANGE)["results"]["page_views"] == 7
    assert store.columns.days_read == read + 1  # the day of the change alone
    store.purge(app_id, T0)  # the day before goes, with its visit
    results = store.analytics_overview(app_id, RANGE)["results"]
    assert (results["visits"], results["page_views"]) == (1, 4)


def track(app_id: str, at: int, event_id: str, source: str) -> Event:
    e = ev(app_id, "signed_up", at, anon="a", context={"utm_source": source})
    return dataclasses.replace(e, id=event_id)


def sources(store: Store, app_id: str) -> dict[str | None, int]:
    rows = store.analytics_breakdown(app_id, RANGE, "utm_source")["results"]
    return {r["value"]: r["visits"] for r in rows}


def test_equal_times_across_batches_land_where_their_ids_put_them(store: Store) -> None:
    """A batch without timestamps has one time for all its events, and the indexer takes
    it in chunks: a later chunk's events tie with the last stored ones. They extend the
    visit as they are, unless one of them comes before its landing (by id)."""
    app_id = store.create_app("x", ["http://localhost"], {}).app_id
    store.write([track(app_id, T0, "evt_5", "first")])
    assert sources(store, app_id) == {"first": 1}
    store.write([track(app_id, T0, "evt_7", "later")])  # after the landing
    assert sources(store, app_id) == {"first": 1}
    store.write([track(app_id, T0, "evt_3", "earlier")])  # before it: the new landing
    assert sources(store, app_id) == {"earlier": 1}
    store.write([page(app_id, T0, "/tie", "evt_9")])  # a page view is the landing
    assert exits(store, app_id) == {"/tie": 1}
    assert sources(store, app_id) == {None: 1}
