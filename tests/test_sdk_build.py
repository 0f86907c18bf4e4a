"""The SDK build and how the collector serves it."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from collector.web.assets import brotli_copy, gzip_copy

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "sdk_js"


def build(**env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (SDK / "node_modules" / "esbuild").exists():
        pytest.skip("the SDK's npm packages are not installed (make sdk installs them)")
    return subprocess.run(
        ["node", "build.mjs"], cwd=SDK, env={**os.environ, **env}, capture_output=True, text=True
    )


def test_build_reports_sizes_within_budget() -> None:
    result = build()
    assert result.returncode == 0, result.stderr
    lines = {x.split()[0]: x for x in result.stdout.splitlines()}
    for name in ("telltale.js", "telltale-debug.js", "telltale.mjs"):
        assert "raw" in lines[name] and "gzip" in lines[name] and "brotli" in lines[name]
        budget = int(lines[name].split("(budget ")[1].split()[0])
        # Measured as the collector serves it (its gzip copy, made with zopfli).
        gz = gzip_copy((ROOT / "static" / name).read_bytes())
        assert len(gz) <= budget, name
        assert f"gzip {len(gz):5} B" in lines[name]
    # Debug mode's lines are not in the script tag: they load on demand.
    script = (ROOT / "static" / "telltale.js").read_text()
    assert "[telltale]" not in script and "snake_case" not in script
    assert "snake_case" in (ROOT / "static" / "telltale-debug.js").read_text()


def test_build_fails_over_budget() -> None:
    result = build(TELLTALE_SIZE_BUDGET="1000")
    assert result.returncode == 1
    assert "over the 1000 B gzip budget" in result.stderr


def test_es_module_imports_and_does_nothing_without_a_dom() -> None:
    # Server-side rendering imports the module where there is no window or document.
    assert build().returncode == 0
    script = (
        "const m = await import(process.argv[1]);"
        "m.init({appId: 'app_x'}); m.trackEvent('rendered');"
        "console.log(JSON.stringify([await m.flush(), Object.keys(m).length]))"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(SDK / "dist" / "telltale.mjs")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[false,10]"


def test_sdk_served_with_etag_cache_and_gzip(client: TestClient) -> None:
    raw = (ROOT / "static" / "telltale.js").read_bytes()
    r = client.get("/sdk.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"]
    assert r.content == raw  # the client decompressed it
    etag = r.headers["etag"]
    again = client.get("/sdk.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304
    plain = client.get("/sdk.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == raw
    assert client.get("/telltale.mjs").status_code == 200
    debug = client.get("/sdk-debug.js")
    assert debug.status_code == 200
    assert debug.headers["content-type"].startswith("application/javascript")
    assert debug.content == (ROOT / "static" / "telltale-debug.js").read_bytes()


def test_sdk_served_as_brotli_to_those_who_ask_and_as_the_smallest_gzip_to_others(
    client: TestClient,
) -> None:
    raw = (ROOT / "static" / "telltale.js").read_bytes()
    # Brotli first, whatever the order of the header; the bytes are the precompressed copy.
    r = client.get("/sdk.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["content-encoding"] == "br" and r.headers["vary"] == "Accept-Encoding"
    assert r.content == raw
    assert int(r.headers["content-length"]) == len(brotli_copy(raw)) < len(gzip_copy(raw))
    # zopfli's gzip: smaller than zlib's best, and any gzip reader takes it.
    gz = client.get("/sdk.js", headers={"Accept-Encoding": "gzip"})
    assert int(gz.headers["content-length"]) == len(gzip_copy(raw)) < len(gzip.compress(raw, 9))
    assert gzip.decompress(gzip_copy(raw)) == raw
    # q=0 refuses a coding.
    refused = client.get("/sdk.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0.5"})
    assert refused.headers["content-encoding"] == "gzip"
    # Each coding has its own ETag: a revalidation with another coding's gets a body.
    assert r.headers["etag"] != gz.headers["etag"]
    other = client.get(
        "/sdk.js", headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]}
    )
    assert other.status_code == 200 and other.content == raw


def test_npm_package_served_as_packed(client: TestClient) -> None:
    r = client.get("/telltale.tgz", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in r.headers  # a tarball is compressed already
    assert r.content == (ROOT / "static" / "telltale.tgz").read_bytes()
    assert r.content[:2] == b"\x1f\x8b"
