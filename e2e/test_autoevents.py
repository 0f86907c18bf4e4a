"""autoEvents and autoHook: page views on SPA navigation, form submits."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from e2e.harness import App, Collector, Site, debug_lines, flush, ready, wait_for

pytestmark = pytest.mark.e2e

QUEUED_VIEW = "[telltale] queued page_viewed"


def navigate(page: Page, script: str) -> None:
    """Runs a navigation and waits until the SDK has queued its page view."""
    with page.expect_console_message(lambda m: m.text.startswith(QUEUED_VIEW)):
        page.evaluate(script)


def test_spa_navigation_counts_each_real_url_change_once(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    base = site.url(app, "")
    with visitor.expect_console_message(lambda m: m.text.startswith(QUEUED_VIEW)):
        visitor.goto(base + "index.html?telltale_debug=1")
    ready(visitor)

    for step in (1, 2, 3):
        # The app sets the title after the history call: the page view still has it.
        navigate(
            visitor, f"history.pushState({{}}, '', 'step-{step}'); document.title = 'Step {step}'"
        )
    # Same URL: not a page view. The next one proves it was not counted.
    visitor.evaluate("history.replaceState({replaced: true}, '', location.href)")
    navigate(visitor, "history.back()")
    navigate(visitor, "location.hash = 'details'")
    assert flush(visitor)

    views = collector.wait_events(app, "page_viewed", 6)
    assert len(views) == 6
    paths = [v["context"]["path"] for v in views]
    prefix = f"/a/{app.app_id}/"
    assert paths == [
        prefix + p for p in ("index.html", "step-1", "step-2", "step-3", "step-2", "step-2")
    ]
    assert views[-1]["context"]["url"] == base + "step-2#details"
    assert [v["properties"]["title"] for v in views[1:4]] == ["Step 1", "Step 2", "Step 3"]
    # On SPA navigations the referrer is the previous URL.
    assert views[1]["properties"]["referrer"] == base + "index.html?telltale_debug=1"
    assert views[2]["properties"]["referrer"] == base + "step-1"
    assert views[4]["properties"]["referrer"] == base + "step-3"
    assert views[5]["context"]["referrer"] == base + "step-2"
    assert len({v["message_id"] for v in views}) == 6


def test_a_navigation_before_the_title_arrived_counts_the_previous_url_once(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    base = site.url(app, "")
    lines = debug_lines(visitor)
    with visitor.expect_console_message(lambda m: m.text.startswith(QUEUED_VIEW)):
        visitor.goto(base + "router.html?telltale_debug=1")
    ready(visitor)

    # Each second step comes while the first URL's page view still waits for a title
    # (none arrives): a hash change, back, a hash change after a history call. By then
    # location already holds the next URL. back() only queues its traversal: the step is
    # done at its popstate (after the SDK's own listener, added first), or the next
    # script's pushState could come before it.
    back = (
        "setTimeout(() => { addEventListener('popstate', () => done(), {once: true});"
        " history.back() }, 300)"
    )
    for script in (
        "location.hash = '/inbox'; setTimeout(() => done(location.hash = '/inbox/42'), 200)",
        "history.pushState({}, '', 'settings'); " + back,
        "history.pushState({}, '', 'd'); setTimeout(() => done(location.hash = 'dd'), 100)",
    ):
        visitor.evaluate(f"new Promise((done) => {{ {script} }})")
    wait_for(
        lambda: sum(m.text.startswith(QUEUED_VIEW) for m in lines) == 7,
        "the 7th queued page view",
        pause=visitor.wait_for_timeout,
    )
    assert flush(visitor)

    views = collector.wait_events(app, "page_viewed", 7)
    home = base + "router.html?telltale_debug=1"
    urls = [v["context"]["url"] for v in views]
    assert urls == [
        home,
        home + "#/inbox",
        home + "#/inbox/42",
        base + "settings",
        home + "#/inbox/42",
        base + "d",
        base + "d#dd",
    ]
    assert [v["properties"]["url"] for v in views] == urls
    assert [v["context"]["path"] for v in views][3] == f"/a/{app.app_id}/settings"
    referrers = [v["properties"]["referrer"] for v in views[1:]]
    assert referrers == urls[:-1]
    assert all(v["properties"]["title"] == "Router home" for v in views)


def test_a_replace_state_that_keeps_the_url_keeps_waiting_for_the_title(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    base = site.url(app, "")
    lines = debug_lines(visitor)
    with visitor.expect_console_message(lambda m: m.text.startswith(QUEUED_VIEW)):
        visitor.goto(base + "router.html?telltale_debug=1")
    ready(visitor)

    # Routers save scroll positions with replaceState on the same URL: no navigation.
    navigate(
        visitor,
        "go('inbox', 'Inbox', 300);"
        " setTimeout(() => history.replaceState({scroll: 1}, '', location.href), 100)",
    )
    assert flush(visitor)

    views = collector.wait_events(app, "page_viewed", 2)
    assert [v["context"]["path"] for v in views] == [
        f"/a/{app.app_id}/router.html",
        f"/a/{app.app_id}/inbox",
    ]
    assert views[1]["properties"]["title"] == "Inbox"
    assert sum(m.text.startswith(QUEUED_VIEW) for m in lines) == 2


def test_form_submits_names_only_never_values(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "forms.html"))
    ready(visitor)
    secret = "SECRET-VALUE"
    visitor.fill("#signup [name=email]", f"{secret}-email@example.com")
    for name in ("full_name", "password", "number", "card_holder", "cvc", "iban", "ssn"):
        visitor.fill(f"#signup [name={name}]", f"{secret}-{name}")
    visitor.fill("#signup [name=about]", f"{secret}-about")
    visitor.fill("#signup [name=secret_note]", f"{secret}-note")
    visitor.check("#signup [name=terms]")

    # A real post: the browser leaves for thanks.html, the SDK neither blocks nor delays it.
    with visitor.expect_navigation(url="**/thanks.html"):
        visitor.click("#signup-submit")

    (submitted,) = collector.wait_events(app, "form_submitted")
    props = submitted["properties"]
    assert props["form_id"] == "signup"
    assert props["form_name"] == "signup_form"
    assert props["form_method"] == "post"
    assert props["form_action"] == site.url(app, "signup")
    fields = ["email", "full_name", "company", "plan", "about", "terms", "referral"]
    assert props["fields"] == fields
    stored = json.dumps(collector.export(app))
    assert "SECRET" not in stored
    never = ("password", "csrf_token", "number", "card_holder", "cvc", "iban", "ssn")
    for absent in (*never, "secret_note", "billing", "total", "go"):
        assert f'"{absent}"' not in json.dumps(props)


def test_prevented_submit_counts_once_and_ignored_form_never(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "forms.html"))
    ready(visitor)
    visitor.fill("#newsletter [name=newsletter_email]", "someone@example.com")
    visitor.click("#newsletter-submit")
    visitor.fill("#search [name=query]", "shoes")
    visitor.click("#search-submit")
    # Both submits were handled by the page itself (preventDefault), which stayed.
    visitor.wait_for_function("window.spaSubmits === 2")
    assert visitor.url == site.url(app, "forms.html")
    assert flush(visitor)

    collector.wait_events(app, "page_viewed")
    (submitted,) = collector.wait_events(app, "form_submitted")
    assert submitted["properties"]["form_id"] == "search"
    assert submitted["properties"]["fields"] == ["query"]
    assert "shoes" not in json.dumps(collector.export(app))


def test_return_from_back_forward_cache_is_a_page_view(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "index.html?telltale_debug=1"))
    ready(visitor)
    assert flush(visitor)  # the first page view is delivered
    # Chromium under automation does not keep pages in the back/forward cache, so the
    # event a restored page receives is dispatched as the browser would. A pageshow that
    # is not a restore (persisted: false) is not one.
    visitor.evaluate("dispatchEvent(new PageTransitionEvent('pageshow', {persisted: false}))")
    navigate(visitor, "dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    assert flush(visitor)

    views = collector.wait_events(app, "page_viewed", 2)
    assert len(views) == 2
    assert views[0]["context"]["url"] == views[1]["context"]["url"]


def test_page_view_waits_for_the_title_a_router_sets_late(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    base = site.url(app, "")
    lines = debug_lines(visitor)
    with visitor.expect_console_message(lambda m: m.text.startswith(QUEUED_VIEW)):
        visitor.goto(base + "router.html?telltale_debug=1")
    ready(visitor)

    navigate(visitor, "go('rendered', 'After a frame', 'frame')")
    navigate(visitor, "go('loaded', 'After its data', 150)")
    navigate(visitor, "go('slow', 'After slow data', 400)")
    # The same title as the page before: taken as it is once the wait is over.
    navigate(visitor, "go('same-title', 'After slow data', 'now')")
    # A second click before the first route's title arrived: both URLs count, once each.
    # The first check of the title (on the next task) runs before the page's own timer.
    visitor.evaluate(
        """new Promise((done) => {
            go('first', 'Never shown', 10000)
            setTimeout(() => done(go('second', 'Second', 50)), 100)
        })"""
    )
    wait_for(
        lambda: sum(m.text.startswith(QUEUED_VIEW) for m in lines) == 7,
        "the 7th queued page view",
        pause=visitor.wait_for_timeout,
    )
    # Same URL again: not a page view.
    visitor.evaluate("history.replaceState({}, '', location.href)")

    views = collector.wait_events(app, "page_viewed", 7)
    prefix = f"/a/{app.app_id}/"
    paths = [v["context"]["path"].removeprefix(prefix) for v in views]
    assert paths == ["router.html", "rendered", "loaded", "slow", "same-title", "first", "second"]
    titles = [v["properties"]["title"] for v in views]
    assert titles[:5] == [
        "Router home",
        "After a frame",
        "After its data",
        "After slow data",
        "After slow data",
    ]
    assert titles[6] == "Second"
    assert all(v["context"]["title"] == v["properties"]["title"] for v in views)
    # Each view is timed when its URL changed, not when its title arrived.
    assert views[5]["timestamp"] < views[6]["timestamp"]
    assert flush(visitor)
    assert len(collector.events(app, "page_viewed")) == 7
