"""Outbound link clicks and file downloads: tracked without delaying or breaking the
navigation, however the link is opened."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route

from e2e.harness import App, Collector, Site, flush, ready

pytestmark = pytest.mark.e2e


def attachment(route: Route) -> None:
    route.fulfill(body="file", headers={"Content-Disposition": "attachment"})


def test_outbound_clicks_however_opened_never_delayed(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.goto(site.url(app, "links.html"))
    ready(visitor)
    opened = []
    for selector, how in [
        ("#out", {"modifiers": ["Control"]}),  # a new background tab
        ("#out", {"button": "middle"}),  # auxclick: a new tab, no click event
        ("#out-blank", {}),  # target=_blank
        ("#out-span span", {"modifiers": ["Control"]}),  # the click lands on a child
        ("#inside", {"modifiers": ["Control"]}),  # this site: not outbound
        ("#ignored", {"modifiers": ["Control"]}),  # data-telltale-ignore
    ]:
        with visitor.context.expect_page() as tab:
            visitor.click(selector, **how)  # type: ignore[arg-type]
        opened.append(tab.value.url)
        tab.value.close()
    visitor.click("#out", button="right")  # a context menu: nothing followed
    assert visitor.url == site.url(app, "links.html")
    clicks = visitor.evaluate("clicks")
    assert len(clicks) == 7 and not any(c["prevented"] for c in clicks)

    # A plain click leaves at once; the queued event goes with the page-exit beacon.
    with visitor.expect_navigation(url=collector.url + "/healthz?from=links"):
        visitor.click("#out")

    out = collector.url + "/healthz"
    from_links = f"{out}?from=links"
    assert opened[:4] == [from_links, from_links, f"{out}?via=blank", f"{out}?via=span"]
    clicked = collector.wait_events(app, "outbound_link_clicked", 5)
    assert [e["properties"] for e in clicked] == [
        {"url": f"{out}?from=links"},
        {"url": f"{out}?from=links"},
        {"url": f"{out}?via=blank"},
        {"url": f"{out}?via=span"},
        {"url": f"{out}?from=links"},
    ]
    assert all(e["context"]["path"].endswith("/links.html") for e in clicked)
    assert collector.events(app, "file_downloaded") == []


def test_file_downloads_by_extension_configurable(
    visitor: Page, collector: Collector, site: Site, app: App
) -> None:
    visitor.route("**/files/**", attachment)
    visitor.goto(site.url(app, "links.html"))
    ready(visitor)
    for selector in ("#pdf", "#csv", "#attr", "#bin"):
        with visitor.expect_download():
            visitor.click(selector)
    assert visitor.url == site.url(app, "links.html")
    # Another list of extensions (a data-download-extensions attribute does the same).
    visitor.evaluate("telltale.init({downloadExtensions: 'bin, zip'})")
    for selector in ("#bin", "#pdf"):
        with visitor.expect_download():
            visitor.click(selector)
    visitor.evaluate("telltale.trackEvent('downloads_done')")
    assert flush(visitor)

    collector.wait_events(app, "downloads_done")
    downloaded = [e["properties"] for e in collector.events(app, "file_downloaded")]
    files = site.url(app, "files/")
    assert downloaded == [
        {"url": files + "Annual-Report.PDF", "extension": "pdf"},
        {"url": collector.url + "/files/export.csv?month=3", "extension": "csv"},
        {"url": files + "build-42"},  # a download attribute, no extension
        {"url": files + "firmware.bin", "extension": "bin"},
    ]
    # A download on another host is a download, not an outbound click.
    assert collector.events(app, "outbound_link_clicked") == []
