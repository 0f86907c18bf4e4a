"""`make serve`, a newcomer's first command: it must not wait for the compiler (the hot
modules run as plain Python until `make native`), nor install what only the tests need;
and the curl it prints must work the moment it is printed. CI keeps the compiled build
tested (`make native` before `make test` in .ci/run)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, free_port

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _dry_run(target: str) -> str:
    """Every command `make TARGET` would run on a fresh clone (-B: as if nothing were
    made yet; -n: printed, not run, but for the recursive make, which prints its own)."""
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


@needs_make
def test_make_serve_installs_and_builds_only_what_serving_needs() -> None:
    commands = _dry_run("serve")
    assert "collector serve --demo" in commands
    assert "npm run --silent build" in commands  # the SDK the demo page loads
    not_for_serve = {
        "native.main": "the mypyc build (make native)",
        "mypyc": "the mypyc build (make native)",
        ".[dev]": "the dev packages (tests, linters, mypyc)",
        "apt-get": "Debian's packages for the tests (chromium, wrk, gcc, postgresql)",
        "tests/clients": "other products' npm libraries, for the compatibility tests",
    }
    found = {what: why for what, why in not_for_serve.items() if what in commands}
    assert not found, f"`make serve` would install or build {found}:\n{commands}"


def test_ci_builds_the_compiled_modules_before_it_tests() -> None:
    steps = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert "make native" in steps and "make test" in steps, steps
    assert steps.index("make native") < steps.index("make test"), steps


def test_serve_demo_without_a_build_prints_a_curl_that_works_at_once(tmp_path: Path) -> None:
    # The package as a fresh clone has it: no extension module, no build stamp.
    shutil.copytree(
        ROOT / "collector",
        tmp_path / "collector",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "_native.stamp"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env["PYTHONPATH"] = str(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "serve", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        curl = None
        deadline = time.monotonic() + 120
        while curl is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            lines = log.read_text().splitlines()
            curl = next((ln.strip() for ln in lines if ln.strip().startswith("curl ")), None)
            time.sleep(0.05)  # polling for the line, not waiting a fixed time
        assert curl is not None, f"no curl printed:\n{log.read_text()}"
        output = log.read_text()
        assert "hot modules: plain Python (not built: make native)" in output, output

        # The printed command, sent as curl would send it, the moment it was printed.
        args = shlex.split(curl)[1:]
        url = next(a for a in args if a.startswith("http://"))
        headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
        body = args[args.index("-d") + 1]
        answer = httpx.post(url, headers=headers, content=body, timeout=10)
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event_id"]

        # The demo app also fills with generated traffic in the background: look for
        # this event by its name and user.
        sent = json.loads(body)
        user = sent["user"]["id"] if isinstance(sent["user"], dict) else sent["user"]
        listed = httpx.get(
            url.replace("/v1/event", "/v1/events"),
            params={"event": sent["event"], "user": user},
            headers=headers,
            timeout=10,
        ).json()
        assert [e["id"] for e in listed["events"]] == [event_id]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
