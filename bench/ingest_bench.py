"""Ingest throughput with wrk: the collector's browser path (Origin + real UA +
enrichment + durable group commit), 50-event batches on the server path, and a bare
Starlette endpoint that only parses the same JSON — all on 2 uvicorn workers, in one run,
so the ratios are comparable on a noisy machine.

    python -m bench.ingest_bench [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.server import CollectorProcess, create_app, free_port

ROOT = Path(__file__).resolve().parent.parent
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
ORIGIN = "https://shop.example.com"
WARMUP_S = 3

# Each request carries a unique message_id (as the SDK's do), so every one is stored.
_LUA_SINGLE = """
local counter = 0
local prefix = tostring(math.random(1, 1e9))
request = function()
  counter = counter + 1
  local body = string.format(
    '{"app_id":"%(app_id)s","event":"page_viewed","anonymous_id":"a%%d",'
    .. '"message_id":"%%s-%%d","properties":{"plan":"pro","n":%%d},'
    .. '"context":{"path":"/pricing","title":"Pricing"}}',
    counter %% 1000, prefix, counter, counter)
  return wrk.format("POST", "/v1/event", nil, body)
end
"""

_LUA_BATCH = """
local counter = 0
local prefix = tostring(math.random(1, 1e9))
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, %(size)d do
    parts[i] = string.format(
      '{"event":"export_completed","user":"u%%d","message_id":"%%s-%%d-%%d",'
      .. '"properties":{"format":"csv","rows":%%d}}',
      (counter * 7 + i) %% 100000, prefix, counter, i, i)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events", nil, body)
end
"""


def _wrk(
    url: str,
    script: str,
    headers: dict[str, str],
    duration: int,
    connections: int,
    server_pgid: int,
) -> dict[str, float]:
    """One warm-up run (discarded), then the measured run: every target gets the same
    warm-up, so caches, SQLite's page cache and the interpreter's specialisation are
    warm in each (measured: a cold collector starts ~30% slower for its first seconds).
    Also the server's CPU time per request (all its processes), which varies less than
    req/s on a shared machine."""
    _wrk_once(url, script, headers, WARMUP_S, connections)
    cpu_before = _group_cpu_s(server_pgid)
    result = _wrk_once(url, script, headers, duration, connections)
    cpu = _group_cpu_s(server_pgid) - cpu_before
    result["cpu_us_per_req"] = cpu / max(1.0, result["rps"] * duration) * 1e6
    return result


def _group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group (Linux /proc)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _wrk_once(
    url: str, script: str, headers: dict[str, str], duration: int, connections: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", path]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": _ms(lat.get("50", "0ms")),
        "p99_ms": _ms(lat.get("99", "0ms")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _bare(duration: int, connections: int) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/v1/event", post=True)
        script = _LUA_SINGLE % {"app_id": "app_bare"}
        return _wrk(
            url,
            script,
            {"Content-Type": "text/plain", "Origin": ORIGIN, "User-Agent": UA},
            duration,
            connections,
            proc.pid,
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def _wait(url: str, post: bool = False) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = httpx.post(url, content=b"{}") if post else httpx.get(url)
            if r.status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def run(
    duration: int = 10, connections: int = 64, batch_size: int = 50
) -> dict[str, dict[str, float]]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    results: dict[str, dict[str, float]] = {}
    results["bare"] = _bare(duration, connections)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        app = create_app(
            db, "bench", "--origin", ORIGIN, "--rate-limit-app", "0", "--rate-limit-ip", "0"
        )
        with CollectorProcess(db, workers=2) as server:
            single = _LUA_SINGLE % {"app_id": app["app_id"]}
            headers = {
                "Content-Type": "text/plain",
                "Origin": ORIGIN,
                "User-Agent": UA,
                "Accept-Language": "en",
            }
            assert server.proc is not None
            pgid = server.proc.pid
            results["single"] = _wrk(server.url, single, headers, duration, connections, pgid)
            batch = _LUA_BATCH % {"size": batch_size}
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {app['api_key']}",
            }
            results["batch"] = _wrk(server.url, batch, headers, duration, connections, pgid)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    results["single"]["events_per_s"] = results["single"]["rps"]
    results["batch"]["events_per_s"] = results["batch"]["rps"] * batch_size
    results["bare"]["events_per_s"] = results["bare"]["rps"]
    results["single"]["ratio_to_bare"] = results["single"]["rps"] / results["bare"]["rps"]
    results["batch"]["ratio_to_bare"] = results["batch"]["rps"] / results["bare"]["rps"]
    results["stored"] = {"events": float(stored)}
    return results


def report(results: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{'endpoint (2 workers)':<34}{'req/s':>10}{'events/s':>12}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'vs bare':>9}{'non-2xx':>9}{'server CPU µs/req':>19}",
    ]
    names = {
        "bare": "bare Starlette, parse JSON only",
        "single": "/v1/event browser path, durable",
        "batch": "/v1/events 50-event batches",
    }
    for key, label in names.items():
        r = results[key]
        lines.append(
            f"{label:<34}{r['rps']:>10.0f}{r['events_per_s']:>12.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r.get('ratio_to_bare', 1.0):>8.0%} {r['non2xx']:>8.0f}{r['cpu_us_per_req']:>19.1f}"
        )
    lines.append(f"events stored by the collector runs: {results['stored']['events']:.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    print(report(run(args.duration, args.connections)))


if __name__ == "__main__":
    main()
