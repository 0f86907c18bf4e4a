"""The demo page that `collector serve --demo` (make serve) shows at /."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, debug_lines, flush, ready, wait_for

pytestmark = pytest.mark.e2e


def test_demo_page_buttons_reach_the_collector(visitor: Page, collector: Collector) -> None:
    lines = debug_lines(visitor)
    visitor.goto(collector.url + "/")
    ready(visitor)
    app_id = visitor.get_attribute("script[data-app-id]", "data-app-id")
    assert app_id and app_id.startswith("app_")
    demo = App(app_id, api_key="")

    visitor.click("#track")
    visitor.click("#nav-pricing")
    visitor.fill("#signup [name=email]", "demo@example.com")
    visitor.fill("#signup [name=password]", "hunter2")
    visitor.click("#signup button[type=submit]")
    visitor.click("#login")
    assert flush(visitor)

    anonymous_id = visitor.evaluate("telltale.getAnonymousId()")
    collector.wait_events(demo, "form_submitted")
    mine = [r for r in collector.export(demo) if r["anonymous_id"] == anonymous_id]
    names = [r["event"] for r in mine]
    assert names.count("plan_upgraded") == 1
    assert names.count("form_submitted") == 1
    pricing = [
        r for r in mine if r["event"] == "page_viewed" and r["context"]["path"] == "/pricing"
    ]
    assert len(pricing) == 1
    assert pricing[0]["properties"]["title"] == "Pricing · Telltale demo"
    form = next(r for r in mine if r["event"] == "form_submitted")
    assert form["properties"]["fields"] == ["email", "plan"]
    assert "hunter2" not in str(mine)
    # The debug lines come from a file loaded on demand: they may follow the stored rows.
    wait_for(
        lambda: any(line.text.startswith("[telltale] answer 202") for line in lines),
        "the answer's debug line",
        pause=visitor.wait_for_timeout,
    )
