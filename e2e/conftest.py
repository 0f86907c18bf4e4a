"""End-to-end fixtures: a real `collector serve` process, a test site on another origin,
and Debian's Chromium driven by pytest-playwright (helpers live in harness.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from e2e.harness import NOT_WEBDRIVER, App, Collector, Site


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], browser: Browser) -> dict[str, Any]:
    # Headless Chromium names itself "HeadlessChrome" in its user agent, which the
    # collector flags as a bot; visitors present the same browser's desktop user agent.
    ua = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{browser.version} Safari/537.36"
    )
    return {**browser_context_args, "user_agent": ua, "viewport": {"width": 1280, "height": 720}}


@pytest.fixture(autouse=True)
def _pause_with_page(request: pytest.FixtureRequest, collector: Collector) -> Iterator[None]:
    if "page" in request.fixturenames:
        page: Page = request.getfixturevalue("page")
        collector.pause = page.wait_for_timeout
    yield
    collector.pause = lambda ms: time.sleep(ms / 1000)


@pytest.fixture
def visitor(page: Page) -> Page:
    """A page that looks like an ordinary visitor: navigator.webdriver removed."""
    page.add_init_script(NOT_WEBDRIVER)
    return page


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    folder = tmp_path_factory.mktemp("collector")
    server = Collector(folder / "e2e.db", folder / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if server.proc is not None and server.proc.returncode not in (0, -15):
            print(server.log.read_text())


@pytest.fixture(scope="session")
def site(collector: Collector) -> Iterator[Site]:
    server = Site(collector)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def app(collector: Collector, site: Site) -> App:
    """A fresh app that allows the test site's origin: each test reads only its events."""
    return collector.create_app(site.origin)
