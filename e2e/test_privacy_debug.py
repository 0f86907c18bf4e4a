"""Privacy (bots, Do Not Track, Global Privacy Control, opt-out, wrong origin) and
debug mode."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, Site, debug_lines, flush, ingest_requests, ready, wait_for

pytestmark = pytest.mark.e2e


def test_webdriver_visitor_is_flagged_as_bot(
    page: Page, collector: Collector, site: Site, app: App
) -> None:
    # `page`, not `visitor`: navigator.webdriver stays true, as Playwright sets it.
    page.goto(site.url(app, "index.html"))
    ready(page)

    (view,) = collector.wait_events(app, "page_viewed")
    assert view["context"]["is_bot"] is True
    assert "webdriver" in view["context"]["bot_reason"]


@pytest.mark.parametrize(
    "signal",
    [
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
    ],
    ids=["do-not-track", "global-privacy-control"],
)
def test_do_not_track_honoured_when_asked(
    visitor: Page, collector: Collector, site: Site, app: App, signal: str
) -> None:
    visitor.add_init_script(signal)
    sent = ingest_requests(visitor)

    with visitor.expect_console_message(lambda m: "not tracking" in m.text):
        visitor.goto(site.url(app, "dnt.html"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('dnt_event')")
    flush(visitor)
    visitor.reload()  # nothing waits for page exit either
    ready(visitor)
    assert sent == []

    # The same visitor on a page that does not ask the SDK to respect the signal.
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    assert flush(visitor)
    (view,) = collector.wait_events(app, "page_viewed")
    assert view["context"]["path"].endswith("/index.html")
    assert collector.events(app, "dnt_event") == []


def test_opt_out_persists_until_opt_in(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    assert flush(visitor)  # the first page view is delivered
    visitor.evaluate("telltale.optOut()")
    visitor.evaluate("telltale.trackEvent('while_opted_out')")
    visitor.reload()  # remembered: this page view is not tracked either
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('still_opted_out')")
    visitor.evaluate("telltale.optIn()")
    visitor.evaluate("telltale.trackEvent('opted_back_in')")
    assert flush(visitor)

    collector.wait_events(app, "opted_back_in")
    assert [e["event"] for e in collector.export(app)] == ["page_viewed", "opted_back_in"]


def test_wrong_origin_stores_nothing(visitor: Page, collector: Collector, site: Site) -> None:
    other = collector.create_app("https://shop.example")
    failed = ingest_requests(visitor, "requestfailed")

    # The collector answers 403 without CORS headers (they go to allowed origins only),
    # so the browser reports a failed request and the SDK warns that the origin may not
    # be allowed (or, if the collector lets it read the 403, that it was rejected).
    with visitor.expect_console_message(
        lambda m: m.type == "warning" and m.text.startswith("[telltale]") and "origin" in m.text
    ):
        visitor.goto(site.url(other, "index.html?telltale_debug=1"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('order_completed')")
    visitor.evaluate("telltale.flush()")

    assert collector.export(other) == []
    assert failed or visitor.evaluate("localStorage.getItem('telltale_queue')") == "[]"


def test_debug_mode_console_lines(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    lines = debug_lines(visitor)
    visitor.goto(site.url(app, "index.html?telltale_debug=1"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('click', {email: 'a@b.c'})")
    visitor.evaluate("telltale.trackEvent('button_1_clicked')")
    visitor.evaluate("telltale.trackEvent('User Signed Up')")
    visitor.evaluate("telltale.trackEvent('user_signed_up', {plan: 'pro'})")
    assert flush(visitor)
    collector.wait_events(app, "user_signed_up")
    # The answer's line comes once its body has been read.
    wait_for(
        lambda: any(m.text.startswith("[telltale] answer ") for m in lines),
        "the answer's debug line",
        pause=visitor.wait_for_timeout,
    )

    logs = [m.text for m in lines if m.type == "log"]
    warns = [m.text for m in lines if m.type == "warning"]
    assert any(t.startswith("[telltale] queued click") for t in logs)
    assert any(t.startswith("[telltale] sending ") for t in logs)
    assert any(t.startswith("[telltale] answer 202: accepted 5") for t in logs)
    assert any('"click" is too generic' in t for t in warns)
    assert any('"button_1_clicked" is too generic' in t for t in warns)
    assert any('"User Signed Up" is not snake_case' in t for t in warns)
    assert any('property "email" looks like personal data' in t for t in warns)
    assert not any('"user_signed_up"' in t for t in warns)


def test_debug_mode_warns_about_a_missing_app_id(visitor: Page, site: Site, app: App) -> None:
    with visitor.expect_console_message(lambda m: "missing app id" in m.text) as message:
        visitor.goto(site.url(app, "debug.html"))
    assert message.value.type == "warning"
    assert message.value.text.startswith("[telltale]")


def test_debug_mode_from_local_storage(visitor: Page, site: Site, app: App) -> None:
    visitor.goto(site.url(app, "away.html"))
    visitor.evaluate("localStorage.setItem('telltale_debug', '1')")
    with visitor.expect_console_message(
        lambda m: m.text.startswith("[telltale] queued page_viewed")
    ):
        visitor.goto(site.url(app, "index.html"))


def test_debug_lines_are_downloaded_only_in_debug_mode(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    scripts: list[str] = []
    visitor.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    visitor.evaluate("telltale.trackEvent('report_exported')")
    assert flush(visitor)
    collector.wait_events(app, "report_exported")
    assert scripts == [collector.url + "/sdk.js"]

    # Debug mode loads the second file, next to the script, and prints what waited.
    with visitor.expect_console_message(lambda m: m.text.startswith("[telltale] init")):
        visitor.goto(site.url(app, "index.html?telltale_debug=1"))
    assert scripts[1:] == [collector.url + "/sdk.js", collector.url + "/sdk-debug.js"]


def test_debug_build_is_found_next_to_a_script_with_a_query_string(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    # The script tag loads sdk-debug.js from the folder its own URL names, with the
    # tag's data-* options (here the app id and the batch size).
    scripts: list[str] = []
    visitor.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    with visitor.expect_console_message(lambda m: m.text.startswith("[telltale] init")):
        visitor.goto(site.url(app, "debug-query.html"))
    assert scripts == [collector.url + "/sdk.js?v=2", collector.url + "/sdk-debug.js"]
    assert visitor.evaluate("telltale.getAnonymousId()")
    visitor.evaluate("telltale.trackEvent('query_checked')")
    assert flush(visitor)
    collector.wait_events(app, "query_checked")
