"""axe-core (WCAG 2.1 A and AA rules) on every dashboard page, on a desktop screen and
at 320 px wide (WCAG 1.4.10's reflow width), in Chromium: any violation fails, named by
rule, page and element. The keyboard and screen-reader checks that axe cannot make are
in e2e/test_dashboard.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from e2e.harness import ROOT, Collector
from e2e.test_dashboard import CHROME, IPHONE, _page_view, _post, create_admin

pytestmark = pytest.mark.e2e

AXE = ROOT / "tests" / "clients" / "node_modules" / "axe-core" / "axe.min.js"
EMAIL = "axe@example.com"
PASSWORD = "correct horse battery staple"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORTS = {"desktop": (1280, 800), "320px": (320, 640)}


@pytest.fixture(scope="module")
def base(collector: Collector) -> str:
    """An admin and an app with a visitor who signs up and buys (so that the overview,
    people, person and funnel pages have rows); the app's dashboard URL."""
    create_admin(collector, EMAIL, PASSWORD)
    app = collector.create_app("https://shop.example.com")
    now = int(time.time() * 1000) - 600_000
    _post(
        collector,
        app,
        [
            _page_view("a_1", "/", now, CHROME),
            _page_view("a_2", "/", now + 1_000, IPHONE, user="u_1"),
            {"event": "signup", "user": "u_1", "properties": {"method": "email"}},
            {"event": "purchase", "user": "u_1", "properties": {"plan": "pro"}},
        ],
    )
    collector.wait_events(app, "purchase")
    return f"{collector.url}/dashboard/apps/{app.app_id}"


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    # axe is injected as a <script> element, which the dashboard's CSP (script-src
    # 'self') refuses; bypass_csp lifts the CSP for this context alone. The other e2e
    # tests keep it, and prove the pages work under it.
    ctx = browser.new_context(bypass_csp=True)
    yield ctx
    ctx.close()


def violations(page: Page, where: str) -> list[str]:
    """axe's violations on the page as it is now, one line per element."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => [v.id, v.impact, v.help,"
        " v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)]))",
        TAGS,
    )
    return [
        f"{where}: {rule} ({impact}) {help_}\n    {node}"
        for rule, impact, help_, nodes in found
        for node in nodes
    ]


@pytest.mark.parametrize("screen", list(VIEWPORTS))
def test_every_page_passes_axe(context: BrowserContext, base: str, screen: str) -> None:
    width, height = VIEWPORTS[screen]
    context.clear_cookies()
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    found: list[str] = []
    origin = base.split("/dashboard/")[0]

    page.goto(origin + "/dashboard/login")
    found += violations(page, "login")
    page.fill("#email", EMAIL)
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("[role=alert]")).to_be_visible()
    found += violations(page, "login with an error")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/")
    found += violations(page, "apps")

    for name, path in (
        ("overview", "/"),
        ("events", "/events"),
        ("people", "/people"),
        ("person", "/people/u_1"),
    ):
        page.goto(base + path)
        found += violations(page, name)

    page.goto(base + "/live")
    expect(page.locator("[data-live-status]")).to_have_text("Live: newest first.")
    found += violations(page, "live")

    page.goto(base + "/segments")
    page.get_by_role("button", name="+ condition").click()
    page.get_by_role("button", name="+ group").click()
    page.get_by_role("button", name="+ property filter").first.click()
    found += violations(page, "segments with the builder open")

    page.goto(base + "/funnels?step=page_viewed&step=signup&step=purchase&breakdown=plan")
    expect(page.locator("[data-funnel]")).to_be_visible()
    found += violations(page, "funnels")

    page.goto(base + "/settings")
    page.get_by_role("button", name="Create a key").click()
    expect(page.locator("[data-new-key]")).to_be_visible()
    found += violations(page, "settings with a new key")

    page.goto(origin + "/dashboard/apps/no-such-app/")
    expect(page.locator("h1")).to_have_text("Not found")
    found += violations(page, "error")

    page.close()
    assert found == [], "\n".join(found)
