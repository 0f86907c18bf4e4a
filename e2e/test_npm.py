"""The npm package as docs/sdk.md says to install it: from the tarball the collector
serves, or from a checkout's sdk_js/. Installed into a scratch project, bundled with
esbuild and run in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

from e2e.harness import ROOT, App, Collector, Site

pytestmark = pytest.mark.e2e

ESBUILD = ROOT / "sdk_js" / "node_modules" / ".bin" / "esbuild"


def run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("source", ["tarball", "checkout"])
def test_npm_install_bundle_and_run(
    visitor: Page, collector: Collector, site: Site, app: App, tmp_path: Path, source: str
) -> None:
    if shutil.which("npm") is None or not ESBUILD.exists():
        pytest.skip("npm and the SDK's npm packages are needed (make install)")
    spec = collector.url + "/telltale.tgz" if source == "tarball" else str(ROOT / "sdk_js")
    project = tmp_path / "shop"
    project.mkdir()
    (project / "package.json").write_text('{"name": "shop", "version": "1.0.0", "private": true}')
    run("npm", "install", "--no-audit", "--no-fund", spec, cwd=project)

    installed = project / "node_modules" / "telltale"
    assert (installed / "dist" / "telltale.d.ts").is_file()
    assert json.loads((installed / "package.json").read_text())["types"] == "./dist/telltale.d.ts"
    (project / "app.js").write_text(
        "import telltale, { init, trackEvent } from 'telltale'\n"
        f"init({{ appId: '{app.app_id}', endpoint: '{collector.url}' }})\n"
        "trackEvent('cart_opened', { items: 2 })\n"
        "window.telltale = telltale\n"
    )
    run(ESBUILD, "app.js", "--bundle", "--format=iife", "--outfile=bundle.js", cwd=project)
    bundle = (project / "bundle.js").read_text()
    visitor.route(
        "**/bundle.js",
        lambda route: route.fulfill(body=bundle, content_type="application/javascript"),
    )
    visitor.goto(site.url(app, "npm.html"))

    (opened,) = collector.wait_events(app, "cart_opened")
    assert opened["properties"] == {"items": 2}
    assert opened["context"]["library"]["name"] == "telltale"
    (view,) = collector.wait_events(app, "page_viewed")
    assert view["properties"]["title"] == "An app that bundles the npm package"
    assert view["anonymous_id"] == opened["anonymous_id"]
