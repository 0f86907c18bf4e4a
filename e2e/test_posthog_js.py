"""posthog-js, unmodified, in Chromium on the test site's origin, sending to the collector
on another: its remote config and flags calls, capture, identify, alias, its page view,
reset, and the beacon at page exit, and what was stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, Route

from e2e.harness import App, Collector, Site, wait_for

pytestmark = pytest.mark.e2e

DIST = Path(__file__).resolve().parent.parent / "tests/clients/node_modules/posthog-js/dist"

# Records what the page hands sendBeacon in sessionStorage, which the next page of the
# same origin can read: requests sent while a page unloads are not seen by Playwright.
RECORD_BEACONS = """
const send = navigator.sendBeacon.bind(navigator)
navigator.sendBeacon = (url, body) => {
  const sent = send(url, body)
  const seen = JSON.parse(sessionStorage.getItem('beacons') || '[]')
  sessionStorage.setItem('beacons', JSON.stringify(seen.concat([[url, sent]])))
  return sent
}
"""


def serve_posthog_js(page: Page, site: Site) -> None:
    """The library's browser build (array.js, what PostHog's snippet loads) for the site."""
    if not (DIST / "array.js").is_file():
        pytest.fail("tests/clients/node_modules is missing (make install)")

    def fulfil(route: Route) -> None:
        path = DIST / route.request.url.split("?", 1)[0].rsplit("/", 1)[-1]
        if path.is_file():
            route.fulfill(path=str(path), content_type="application/javascript")
        else:
            route.fulfill(status=404, body="")

    page.route(f"{site.origin}/vendor/posthog-js/*", fulfil)


def user(collector: Collector, app: App, user_id: str, events: int) -> dict[str, Any]:
    """The user's profile once `events` events count for it."""

    def profile() -> dict[str, Any] | None:
        r = httpx.get(
            f"{collector.url}/v1/users/{user_id}",
            headers={"Authorization": f"Bearer {app.api_key}"},
        )
        body: dict[str, Any] = r.json() if r.status_code == 200 else {}
        return body if sum(body.get("event_counts", {}).values()) >= events else None

    found: dict[str, Any] = wait_for(profile, f"{user_id}'s events", pause=collector.pause)
    return found


def test_posthog_js_calls_are_stored(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    serve_posthog_js(visitor, site)
    visitor.add_init_script(RECORD_BEACONS)
    answers: list[tuple[str, str, int]] = []

    def record(response: Response) -> None:
        if response.url.startswith(collector.url):
            answers.append((response.request.method, response.url, response.status))

    visitor.on("response", record)
    problems: list[str] = []
    visitor.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    visitor.on("pageerror", lambda e: problems.append(str(e)))
    visitor.goto(site.url(app, "posthog.html"))

    # Its page view (capture_pageview), anonymous: before identify, posthog-js's distinct
    # id is its device id.
    (page,) = collector.wait_events(app, "page_viewed")
    device = page["anonymous_id"]
    assert device and page["user_id"] is None
    assert page["context"]["path"] == f"/a/{app.app_id}/posthog.html"
    assert page["context"]["source"] == "browser"
    assert page["context"]["library"] == "web/1.455.2"
    assert page["context"]["is_bot"] is False

    visitor.evaluate("posthog.capture('order_completed', {total: 10})")
    (order,) = collector.wait_events(app, "order_completed")
    assert order["properties"] == {"total": 10} and order["anonymous_id"] == device
    assert order["message_id"]  # posthog-js's uuid

    visitor.evaluate(
        """posthog.identify('ph-user', {plan: 'pro'})
           posthog.alias('ph-alias')
           posthog.capture('report_exported', {format: 'csv'})"""
    )
    (report,) = collector.wait_events(app, "report_exported")
    assert report["user_id"] == "ph-user" and report["anonymous_id"] == device

    # identify linked the device: its anonymous events count for ph-user, with the traits
    # $set carried; the alias made ph-alias another name for the same person.
    profile = user(collector, app, "ph-alias", 3)
    assert profile["event_counts"] == {"page_viewed": 1, "order_completed": 1, "report_exported": 1}
    assert profile["traits"]["plan"] == "pro"
    assert device in profile["anonymous_ids"]

    # reset() forgets the person: the next event is a new device's, anonymous.
    visitor.evaluate("posthog.reset(); posthog.capture('pricing_viewed')")
    (after_reset,) = collector.wait_events(app, "pricing_viewed")
    assert after_reset["user_id"] is None and after_reset["anonymous_id"] not in (None, device)

    # An event captured as the page is left waits in posthog-js's queue; its page-exit
    # handler sends it by sendBeacon (away.html has no library to send it).
    with visitor.expect_navigation(url="**/away.html"):
        visitor.evaluate("posthog.capture('checkout_started'); location.href = 'away.html'")
    (started,) = collector.wait_events(app, "checkout_started")
    assert started["context"]["path"] == f"/a/{app.app_id}/posthog.html"
    beacons = visitor.evaluate("JSON.parse(sessionStorage.getItem('beacons') || '[]')")
    assert [f"{collector.url}/e/", True] in beacons, beacons

    assert problems == []
    # It loaded its config and flags from the collector, posted to /e/, and nothing
    # else: no extension code to fetch from the collector.
    paths = {(method, url.removeprefix(collector.url).split("?")[0]) for method, url, _ in answers}
    assert ("GET", f"/array/{app.app_id}/config") in paths
    assert ("POST", "/flags/") in paths
    assert ("POST", "/e/") in paths
    assert not [p for _, p in paths if p.startswith("/static/")], paths
    assert all(status == 200 for _, _, status in answers), answers
