"""Anonymous id, setUserId, identify, reset."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, Site, flush, ready

pytestmark = pytest.mark.e2e

# Version 7 (RFC 9562): 48 bits of Unix milliseconds, version 7, variant 10, random bits.
UUID7 = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_identity_stitching_across_set_user_id_and_reset(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    first = visitor.evaluate("telltale.getAnonymousId()")
    visitor.evaluate("telltale.trackEvent('pricing_viewed')")
    visitor.evaluate("telltale.setUserId('u_42', {plan: 'pro'})")
    visitor.evaluate("telltale.trackEvent('plan_upgraded', {plan: 'pro'})")
    visitor.evaluate("telltale.reset()")
    second = visitor.evaluate("telltale.getAnonymousId()")
    visitor.evaluate("telltale.trackEvent('catalog_viewed')")
    assert flush(visitor)

    assert first != second
    (before,) = collector.wait_events(app, "pricing_viewed")
    (during,) = collector.wait_events(app, "plan_upgraded")
    (after,) = collector.wait_events(app, "catalog_viewed")
    assert before["anonymous_id"] == first
    assert during["anonymous_id"] == first
    assert during["user_id"] == "u_42"
    assert after["anonymous_id"] == second
    assert after["user_id"] is None


def test_set_user_id_links_the_anonymous_id_to_the_user(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    anonymous_id = visitor.evaluate("telltale.getAnonymousId()")
    # Traits given while anonymous wait for the user id.
    visitor.evaluate("telltale.identify({company: 'Acme'})")
    visitor.evaluate("telltale.setUserId('u_7', {plan: 'team'})")
    assert flush(visitor)

    answer = httpx.get(
        f"{collector.url}/v1/users/u_7", headers={"Authorization": f"Bearer {app.api_key}"}
    )
    assert answer.status_code == 200, answer.text
    user = answer.json()
    assert anonymous_id in user["anonymous_ids"]
    assert user["traits"]["plan"] == "team"
    assert user["traits"]["company"] == "Acme"


def test_anonymous_id_survives_reloads(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    first = visitor.evaluate("telltale.getAnonymousId()")
    visitor.reload()
    ready(visitor)
    assert visitor.evaluate("telltale.getAnonymousId()") == first
    assert flush(visitor)

    views = collector.wait_events(app, "page_viewed", 2)
    assert [v["anonymous_id"] for v in views] == [first, first]


def test_blocked_storage_falls_back_to_memory(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    # As in Safari's private mode or a sandboxed iframe: every storage access throws.
    visitor.add_init_script(
        "Object.defineProperty(window, 'localStorage', {get() {"
        " throw new DOMException('blocked', 'SecurityError') }})"
    )
    # As on a plain-http page (not a secure context): no crypto.randomUUID.
    visitor.add_init_script("delete Crypto.prototype.randomUUID")
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    anonymous_id = visitor.evaluate("telltale.getAnonymousId()")
    assert visitor.evaluate("telltale.getAnonymousId()") == anonymous_id
    assert re.fullmatch(UUID7, anonymous_id)
    visitor.evaluate("telltale.setUserId('u_private')")
    visitor.evaluate("telltale.trackEvent('note_saved')")
    assert flush(visitor)

    (view,) = collector.wait_events(app, "page_viewed")
    (saved,) = collector.wait_events(app, "note_saved")
    assert view["anonymous_id"] == saved["anonymous_id"] == anonymous_id
    assert saved["user_id"] == "u_private"
    assert re.fullmatch(UUID7, saved["message_id"])


def uuid7_ms(value: str) -> int:
    return int(value.replace("-", "")[:12], 16)


def test_message_ids_are_time_ordered_uuid7(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    # Ids that sort by time keep the collector's message_id index growing at its end.
    visitor.goto(site.url(app, "index.html"))
    ready(visitor)
    start, end = visitor.evaluate(
        """() => {
            const start = Date.now()
            for (const name of ['step_one', 'step_two', 'step_three']) {
                // Each event in a later millisecond than the one before (no sleeping).
                const t = Date.now()
                while (Date.now() === t) {}
                telltale.trackEvent(name)
            }
            return [start, Date.now()]
        }"""
    )
    assert flush(visitor)
    ids = [
        collector.wait_events(app, name)[0]["message_id"]
        for name in ("step_one", "step_two", "step_three")
    ]
    assert all(re.fullmatch(UUID7, i) for i in ids), ids
    assert ids == sorted(ids)
    times = [uuid7_ms(i) for i in ids]
    assert start < times[0] < times[1] < times[2] <= end
