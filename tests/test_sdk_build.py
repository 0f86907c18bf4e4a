"""The SDK build and how the collector serves it."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

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
    line = next(x for x in result.stdout.splitlines() if x.startswith("telltale.js"))
    assert "raw" in line and "gzip" in line and "brotli" in line
    gz = len(gzip.compress((ROOT / "static" / "telltale.js").read_bytes(), 9))
    assert gz <= 3500


def test_build_fails_over_budget() -> None:
    result = build(TELLTALE_SIZE_BUDGET="1000")
    assert result.returncode == 1
    assert "over the 1000 B gzip budget" in result.stderr


def test_sdk_served_with_etag_cache_and_gzip(client: TestClient) -> None:
    raw = (ROOT / "static" / "telltale.js").read_bytes()
    r = client.get("/sdk.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"]
    assert r.content == raw  # the client decompressed it
    etag = r.headers["etag"]
    again = client.get("/sdk.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    plain = client.get("/sdk.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == raw
    assert client.get("/telltale.mjs").status_code == 200
