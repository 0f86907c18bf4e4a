"""The script tag: page views with the parsed browser, the ES module, a first-party
proxy, pre-load calls."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, Site, flush, ingest_requests, is_ingest, ready

pytestmark = pytest.mark.e2e


def test_page_view_stored_with_parsed_browser_and_os(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    anonymous_id = visitor.evaluate("telltale.getAnonymousId()")

    (view,) = collector.wait_events(app, "page_viewed")

    assert view["anonymous_id"] == anonymous_id
    assert view["user_id"] is None
    assert view["message_id"]
    ctx = view["context"]
    assert ctx["source"] == "browser"
    assert "Chrom" in ctx["browser"]
    assert ctx["browser_version"]
    assert ctx["os"] == "Linux"
    assert ctx["device_type"] == "desktop"
    assert ctx["is_bot"] is False
    assert ctx["url"] == site.url(app, "index.html")
    assert ctx["path"] == f"/a/{app.app_id}/index.html"
    assert ctx["title"] == "Telltale test home"
    assert ctx["screen"] == "1280x720"
    assert ctx["locale"]
    assert ctx["timezone"]
    assert ctx["library"]["name"] == "telltale"
    assert view["properties"]["path"] == ctx["path"]
    assert view["properties"]["title"] == "Telltale test home"


def test_times_are_sent_as_epoch_ms_and_stored_corrected(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    # The SDK sends `timestamp` and `sent_at` as epoch milliseconds (fewer bytes in the
    # script than ISO text); the collector corrects the skew with them and stores ISO.
    from collector.timeutil import parse_timestamp

    sent = ingest_requests(visitor)
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    before = visitor.evaluate("Date.now()")
    visitor.evaluate("telltale.trackEvent('times_checked')")
    assert flush(visitor)
    after = visitor.evaluate("Date.now()")

    bodies = [r.post_data_json for r in sent]
    (body,) = [b for b in bodies if any(e["event"] == "times_checked" for e in b["events"])]
    (event,) = [e for e in body["events"] if e["event"] == "times_checked"]
    assert isinstance(body["sent_at"], int) and isinstance(event["timestamp"], int)
    assert before <= event["timestamp"] <= body["sent_at"] <= after
    (stored,) = collector.wait_events(app, "times_checked")
    # received_at − (sent_at − timestamp): on one clock, between the two readings.
    assert before <= parse_timestamp(stored["timestamp"]) <= after
    assert stored["timestamp"].endswith("Z")


def test_script_tag_defines_no_global_but_telltale(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    # The script tag's names stay inside its function: a page's own `a` or `e` is safe.
    own = "Object.getOwnPropertyNames(window)"
    visitor.goto(site.url(app, "away.html"))  # no SDK on it
    before = set(visitor.evaluate(own))
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    collector.wait_events(app, "page_viewed")
    assert set(visitor.evaluate(own)) - before == {"telltale"}


def test_es_module_build(visitor: Page, collector: Collector, site: Site, app: App) -> None:
    visitor.goto(site.url(app, "module.html"))
    ready(visitor)

    (loaded,) = collector.wait_events(app, "module_loaded")
    collector.wait_events(app, "page_viewed")
    assert loaded["properties"] == {"build": "esm"}
    assert loaded["context"]["library"]["name"] == "telltale"


def test_first_party_proxy_endpoint(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    sent = ingest_requests(visitor)
    visitor.goto(site.url(app, "proxy.html"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('report_exported', {format: 'csv'})")
    assert flush(visitor)

    collector.wait_events(app, "report_exported")
    assert sent
    assert all(r.url == site.origin + "/stats/v1/events" for r in sent)


def test_calls_made_before_the_script_loads_are_kept(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "preload.html"))
    ready(visitor)
    assert visitor.evaluate("window.stubWasActive") is True

    (started,) = collector.wait_events(app, "signup_started")
    assert started["user_id"] == "u_early"
    assert started["properties"] == {"step": 1}
    assert started["anonymous_id"] == visitor.evaluate("telltale.getAnonymousId()")


def test_data_attribute_options(visitor: Page, collector: Collector, site: Site, app: App) -> None:
    sent = ingest_requests(visitor)
    visitor.clock.install()  # the page's timers run when the test says so
    visitor.goto(site.url(app, "options.html"))
    ready(visitor)
    visitor.click("#search-submit")  # data-auto-hook="false": not tracked
    visitor.wait_for_function("window.spaSubmits === 1")
    visitor.evaluate("history.pushState({}, '', 'elsewhere')")  # data-auto-events="false"
    visitor.evaluate("telltale.trackEvent('filter_applied')")
    visitor.clock.run_for(30_000)  # within data-flush-interval="60000": nothing sent
    visitor.evaluate("0")  # a round trip, so a request would have been reported
    assert sent == []
    # data-batch-size="2": the second event sends the batch at once.
    with visitor.expect_request(lambda r: is_ingest(r.url)):
        visitor.evaluate("telltale.trackEvent('filter_cleared')")
        visitor.clock.run_for(1)

    collector.wait_events(app, "filter_cleared")
    assert [e["event"] for e in collector.export(app)] == ["filter_applied", "filter_cleared"]
    assert len(sent) == 1
