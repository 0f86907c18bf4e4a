"""Engagement: when a page is left, how long it was visible and how far down it was
read, once per page view, as a `page_left` event on the page it measures."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, Site, ready

pytestmark = pytest.mark.e2e


def scroll(page: Page, y: int) -> None:
    page.evaluate(f"scrollTo(0, {y})")
    page.wait_for_function(f"window.scrolledTo === {y}")


def test_engagement_once_per_page_with_visible_time_and_deepest_scroll(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "engage.html"))
    ready(visitor)
    loaded = visitor.evaluate("Date.now()")  # the first page view is older than this
    origin = visitor.evaluate("performance.timeOrigin")
    scroll(visitor, 1280)  # (1280 + 720) / 4000: half of the page
    scroll(visitor, 0)  # back up: the deepest point counts
    visitor.wait_for_function(f"Date.now() - {loaded} >= 300")

    # An SPA navigation leaves the first page.
    left, navigated = visitor.evaluate(
        """() => {
            const before = Date.now()
            history.pushState({}, '', 'chapter-2')
            document.title = 'Chapter 2'
            return [before, Date.now()]
        }"""
    )
    scroll(visitor, 4000 - 720)  # the bottom: 100%
    visitor.wait_for_function(f"Date.now() - {navigated} >= 300")
    # Hidden (a tab switch): the second page is left.
    hiding, hid = visitor.evaluate(
        "() => { const before = Date.now(); setHidden(true); return [before, Date.now()] }"
    )
    # Back and away again, then gone for good: nothing more for the same page view.
    visitor.evaluate("setHidden(false)")
    scroll(visitor, 0)
    visitor.evaluate("setHidden(true); setHidden(false)")
    with visitor.expect_navigation(url="**/away.html"):
        visitor.evaluate("telltale.trackEvent('chapter_closed'); location.href = 'away.html'")

    collector.wait_events(app, "chapter_closed")
    first, second = collector.wait_events(app, "page_left", 2)
    assert len(collector.events(app, "page_left")) == 2
    prefix = f"/a/{app.app_id}/"
    assert first["context"]["path"] == prefix + "engage.html"
    assert first["context"]["title"] == "A long read"
    assert first["properties"]["scroll_depth"] == 50
    assert left - loaded <= first["properties"]["engaged_ms"] <= navigated - origin
    assert second["context"]["path"] == prefix + "chapter-2"
    assert second["context"]["title"] == "Chapter 2"
    assert second["properties"]["scroll_depth"] == 100
    assert hiding - navigated <= second["properties"]["engaged_ms"] <= hid - left
    assert set(second["properties"]) == {"engaged_ms", "scroll_depth"}
    views = collector.events(app, "page_viewed")
    assert [v["context"]["path"] for v in views] == [prefix + "engage.html", prefix + "chapter-2"]
    assert first["timestamp"] <= views[1]["timestamp"]


def test_one_page_visit_has_its_engagement_when_the_visitor_leaves(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "engage.html"))
    ready(visitor)
    loaded = visitor.evaluate("Date.now()")
    visitor.wait_for_function(f"Date.now() - {loaded} >= 500")
    # away.html has no SDK: the page-exit beacon carries the engagement.
    with visitor.expect_navigation(url="**/away.html"):
        visitor.evaluate("location.href = 'away.html'")

    (left,) = collector.wait_events(app, "page_left")
    (view,) = collector.events(app, "page_viewed")
    assert left["context"]["path"] == view["context"]["path"]
    assert left["properties"]["engaged_ms"] >= 500
    assert left["properties"]["scroll_depth"] == 18  # 720 of 4,000 px, never scrolled
    assert left["timestamp"] > view["timestamp"]
