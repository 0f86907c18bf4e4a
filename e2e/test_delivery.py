"""Delivery: batching, page exit, offline spells, retries."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route

from e2e.harness import App, Collector, Site, flush, ingest_requests, ready

pytestmark = pytest.mark.e2e


def message_ids(request: Request) -> list[str]:
    return [e["message_id"] for e in json.loads(request.post_data or "{}")["events"]]


def test_batching_sends_25_events_in_few_requests(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    requests = ingest_requests(visitor)
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    visitor.evaluate("for (let n = 0; n < 25; n++) telltale.trackEvent('item_added', {n})")
    assert flush(visitor)

    added = collector.wait_events(app, "item_added", 25)
    assert sorted(e["properties"]["n"] for e in added) == list(range(25))
    # The default batch is 10 events: 26 events (with the page view) take 3 or 4 requests.
    assert 3 <= len(requests) <= 4, [len(message_ids(r)) for r in requests]
    for request in requests:
        assert request.method == "POST"
        assert request.headers["content-type"] == "text/plain;charset=UTF-8"


def test_event_tracked_right_before_navigating_away_is_stored(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    # away.html has no SDK: only the page-exit beacon can deliver the event.
    with visitor.expect_navigation(url="**/away.html"):
        visitor.evaluate("telltale.trackEvent('checkout_started'); location.href = 'away.html'")

    (started,) = collector.wait_events(app, "checkout_started")
    assert started["context"]["path"] == f"/a/{app.app_id}/index.html"


def test_unreachable_collector_across_reloads_loses_nothing(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    failed = ingest_requests(visitor, "requestfailed")
    visitor.route("**/v1/events", lambda route: route.abort("internetdisconnected"))
    # Routing does not see the beacons sent while a page unloads: make them vanish the
    # way a beacon sent offline does (queued, "true", never delivered).
    visitor.add_init_script("navigator.sendBeacon = () => true")
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    for load in range(3):
        visitor.evaluate(f"telltale.trackEvent('report_viewed', {{load: {load}}})")
        assert flush(visitor) is False  # still queued
        if load < 2:
            visitor.reload()
            ready(visitor)
    assert failed
    assert collector.events(app) == []  # nothing reached the collector

    visitor.unroute("**/v1/events")
    assert flush(visitor) is True

    views = collector.wait_events(app, "page_viewed", 3)
    viewed = collector.wait_events(app, "report_viewed", 3)
    assert sorted(e["properties"]["load"] for e in viewed) == [0, 1, 2]
    rows = collector.export(app)
    assert len(views) == 3
    # Each reload left a page: its engagement (page_left) was queued like any event.
    assert len(rows) == 8
    assert [r["event"] for r in rows].count("page_left") == 2
    assert len({r["message_id"] for r in rows}) == 8
    assert visitor.evaluate("localStorage.getItem('telltale_queue')") == "[]"


def fake_answer(status: int) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {
            "Content-Type": "application/json",
            "Retry-After": "1",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": "Retry-After",
        },
        "body": json.dumps({"success": False, "message": "busy", "errors": []}),
    }


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limited_or_busy_answers_are_retried_after_retry_after(
    visitor: Page, collector: Collector, site: Site, app: App, status: int
) -> None:
    sent: list[tuple[float, list[str]]] = []

    def once_busy(route: Route) -> None:
        sent.append((time.monotonic(), message_ids(route.request)))
        if len(sent) == 1:
            route.fulfill(**fake_answer(status))
        else:
            route.continue_()

    visitor.route("**/v1/events", once_busy)
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('export_completed', {rows: 10})")

    (completed,) = collector.wait_events(app, "export_completed")
    collector.wait_events(app, "page_viewed")
    first_at, first_ids = sent[0]
    retry = next(s for s in sent[1:] if set(first_ids) <= set(s[1]))
    # The retry carries the same message_ids, no earlier than Retry-After allows.
    assert retry[0] - first_at >= 0.9
    assert completed["message_id"] in first_ids or completed["message_id"] in retry[1]
    assert Counter(r["message_id"] for r in collector.export(app)).most_common(1)[0][1] == 1


def test_bad_request_is_not_retried(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    sent: list[list[str]] = []

    def first_refused(route: Route) -> None:
        sent.append(message_ids(route.request))
        if len(sent) == 1:
            route.fulfill(**{**fake_answer(400), "headers": {"Access-Control-Allow-Origin": "*"}})
        else:
            route.continue_()

    visitor.route("**/v1/events", first_refused)
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('doomed_event')")
    assert flush(visitor) is True  # answered for good: dropped, not queued
    visitor.evaluate("telltale.trackEvent('later_event')")
    assert flush(visitor) is True

    collector.wait_events(app, "later_event")
    assert collector.events(app, "doomed_event") == []
    refused = set(sent[0])
    assert refused
    assert all(not refused & set(ids) for ids in sent[1:])


def test_offline_queue_is_capped_oldest_dropped(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.route("**/v1/events", lambda route: route.abort("internetdisconnected"))
    visitor.goto(site.url(app, "index.html?telltale_debug=1"))
    ready(visitor)
    with visitor.expect_console_message(lambda m: "queue full" in m.text):
        visitor.evaluate("for (let n = 0; n < 505; n++) telltale.trackEvent('row_added', {n})")
    queued = visitor.evaluate("JSON.parse(localStorage.getItem('telltale_queue')).length")
    assert queued == 500

    visitor.unroute("**/v1/events")
    assert flush(visitor)
    added = collector.wait_events(app, "row_added", 500)
    # The page view and the first five events were the oldest: dropped.
    assert sorted(e["properties"]["n"] for e in added) == list(range(5, 505))
    assert collector.events(app, "page_viewed") == []
