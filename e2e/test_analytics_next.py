"""Segment's analytics.js (@segment/analytics-next), unmodified, in Chromium on the test
site's origin, sending to the collector on another: its settings fetch, CORS preflights
for its Basic auth, every call it has, and what was stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, Route

from e2e.harness import App, Collector, Site, wait_for

pytestmark = pytest.mark.e2e

UMD = (
    Path(__file__).resolve().parent.parent
    / "tests/clients/node_modules/@segment/analytics-next/dist/umd"
)


def serve_analytics_next(page: Page, site: Site, collector: Collector) -> None:
    """The library's UMD build for the site, and the chunks it loads from its CDN (the
    collector, by cdnURL), fulfilled from the npm package."""
    if not (UMD / "index.js").is_file():
        pytest.fail("tests/clients/node_modules is missing (make install)")

    def fulfil(route: Route) -> None:
        name = route.request.url.split("?", 1)[0].rsplit("/", 1)[-1]
        path = UMD / name
        if path.is_file():
            route.fulfill(path=str(path), content_type="application/javascript")
        else:
            route.fulfill(status=404, body="")

    page.route(f"{site.origin}/vendor/analytics-next/*", fulfil)
    page.route(f"{collector.url}/analytics-next/bundles/*", fulfil)


def test_analytics_next_calls_are_stored(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    serve_analytics_next(visitor, site, collector)
    answers: list[tuple[str, str, int]] = []

    def record(response: Response) -> None:
        if response.url.startswith(collector.url) and "/bundles/" not in response.url:
            answers.append((response.request.method, response.url, response.status))

    visitor.on("response", record)
    problems: list[str] = []
    visitor.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    visitor.on("pageerror", lambda e: problems.append(str(e)))
    visitor.goto(site.url(app, "analytics_next.html"))

    # Each call resolves once delivered; a failed delivery is on its context.
    failures = visitor.evaluate(
        """async () => {
          const a = window.analytics
          const contexts = [
            await a.page('Docs', 'Pricing', {plan: 'pro'}),
            await a.alias('web-u'),  // before identify, as Segment documents it
            await a.track('order_completed', {total: 10}),
            await a.identify('web-u', {plan: 'pro'}),
            await a.screen('App', 'Settings', {tab: 'billing'}),
            await a.group('g-web', {name: 'Acme'}),
          ]
          return contexts.map(c => c.failedDelivery() ? String(c.failedDelivery().reason) : null)
        }"""
    )
    assert failures == [None] * 6
    assert problems == []

    (page,) = collector.wait_events(app, "page_viewed")
    assert page["properties"]["name"] == "Pricing" and page["properties"]["category"] == "Docs"
    assert page["context"]["path"] == f"/a/{app.app_id}/analytics_next.html"
    assert page["context"]["title"] == "Analytics.js page"
    assert page["context"]["source"] == "browser" and page["user_id"] is None
    (order,) = collector.wait_events(app, "order_completed")
    # Sent anonymously after the alias: it counts for web-u by the alias's link.
    assert order["user_id"] is None and order["properties"] == {"total": 10}
    assert order["anonymous_id"] == page["anonymous_id"]
    (group,) = collector.wait_events(app, "group_identified")
    assert group["properties"]["group_id"] == "g-web"
    collector.wait_events(app, "screen_viewed")

    # The alias linked the anonymous id to web-u: every event counts for web-u.
    def profile() -> dict[str, Any] | None:
        r = httpx.get(
            f"{collector.url}/v1/users/web-u",
            headers={"Authorization": f"Bearer {app.api_key}"},
        )
        counts = r.json().get("event_counts", {}) if r.status_code == 200 else {}
        return r.json() if len(counts) == 4 else None

    counts = wait_for(profile, "web-u's events", pause=collector.pause)["event_counts"]
    assert counts == {
        "page_viewed": 1,
        "order_completed": 1,
        "screen_viewed": 1,
        "group_identified": 1,
    }

    # Its settings were ours, and it posted to analytics.js's short paths (with its Basic
    # auth header: each POST passed a CORS preflight).
    paths = {(method, url.removeprefix(collector.url).split("?")[0]) for method, url, _ in answers}
    assert ("GET", f"/v1/projects/{app.app_id}/settings") in paths
    assert {("POST", p) for p in ("/v1/p", "/v1/i", "/v1/t", "/v1/s", "/v1/g", "/v1/a")} <= paths
    assert all(status in (200, 204) for _, _, status in answers), answers
