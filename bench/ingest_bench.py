"""Ingest throughput with wrk: the collector's browser path (Origin + real UA +
enrichment + durable group commit), 50-event batches on the server path, and a bare
Starlette endpoint that only parses the same JSON — all on 2 uvicorn workers, in one run,
so the ratios are comparable on a noisy machine.

    python -m bench.ingest_bench [--duration 5] [--connections 64] [--rounds 3]
                                 [--without-storage]

`--without-storage` adds the collector with its store's write path taken out
(bench/without_storage.py): what storage costs, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from collector import native
from collector.settings import Settings
from collector.store import SQLiteStore
from tests.server import CollectorProcess, create_app, free_port, index_all

ROOT = Path(__file__).resolve().parent.parent
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
ORIGIN = "https://shop.example.com"
WARMUP_S = 3

# Each request carries a unique message_id (as the SDK's do), so every one is stored:
# wrk's Lua is seeded the same in every thread and run, so the id is made of a token
# passed per run (after `--`) and the thread's number, not of math.random. Like the
# SDK's version 7 UUIDs, ids sort in the order they were made: the run's start time
# leads (runs start seconds apart), then the token, a zero-padded counter and the thread.
_LUA_UNIQUE = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = string.format("%%010d-%%s", os.time(), args[1])
  suffix = "-" .. tid
end
"""

_LUA_SINGLE = (
    _LUA_UNIQUE
    + """
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"app_id":"%(app_id)s","event":"page_viewed","anonymous_id":"a%%d",'
    .. '"message_id":"%%s-%%010d%%s","properties":{"plan":"pro","n":%%d},'
    .. '"context":{"path":"/pricing","title":"Pricing"}}',
    counter %% 1000, prefix, counter, suffix, counter)
  return wrk.format("POST", "/v1/event", nil, body)
end
"""
)

_LUA_BATCH = (
    _LUA_UNIQUE
    + """
local counter = 0
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, %(size)d do
    parts[i] = string.format(
      '{"event":"export_completed","user":"u%%d","message_id":"%%s-%%010d-%%03d%%s",'
      .. '"properties":{"format":"csv","rows":%%d}}',
      (counter * 7 + i) %% 100000, prefix, counter, i, suffix, i)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events", nil, body)
end
"""
)


def _wrk(
    url: str,
    script: str,
    headers: dict[str, str],
    duration: int,
    connections: int,
    server_pgid: int,
    db: Path | None = None,
) -> dict[str, float]:
    """One warm-up run (discarded), then the measured run: every target gets the same
    warm-up, so caches, SQLite's page cache and the interpreter's specialisation are
    warm in each. Also the server's CPU time per request (all its processes). With the
    collector's `db`, its indexer is waited for after each run, so every run starts with
    nothing pending and no other run shares the CPU with indexing; the wait after the
    measured run is reported (how long indexing what it accepted took). Dirty pages are
    flushed before the measured run, for every target alike."""
    warm = _wrk_once(url, script, headers, WARMUP_S, connections)
    if db is not None:
        _drain(db)
    # Earlier runs' writes (the indexer's above all: hundreds of MB after a batch run) go
    # to disk now rather than through kernel writeback during this run, where they would
    # queue ahead of the collector's fsyncs. Every target gets the same.
    os.sync()
    cpu_before = _group_cpu_s(server_pgid)
    result = _wrk_once(url, script, headers, duration, connections)
    cpu = _group_cpu_s(server_pgid) - cpu_before
    result["cpu_us_per_req"] = cpu / max(1.0, result["rps"] * duration) * 1e6
    result["acked"] = _acked(warm) + _acked(result)
    if db is not None:
        result["backlog"], result["drain_s"] = _drain(db)
    return result


def _drain(db: Path, timeout: float = 600.0) -> tuple[int, float]:
    """Wait until the collector's indexer has indexed everything accepted (polling the
    backlog); return (events pending at the start, seconds it took)."""
    store = SQLiteStore(str(db))
    try:
        start = time.perf_counter()
        backlog = first = store.backlog()
        while backlog:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"indexer still {backlog} events behind after {timeout} s")
            time.sleep(0.02)  # polling for the indexer, not waiting a fixed time
            backlog = store.backlog()
        return first, time.perf_counter() - start
    finally:
        store.close()


def _acked(result: dict[str, float]) -> float:
    """Requests answered 2xx: for the collector, each one's events are committed."""
    return result["requests"] - result["non2xx"]


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
    run_token = uuid.uuid4().hex[:12]
    out = subprocess.run(
        [*cmd, url, "--", run_token], capture_output=True, text=True, check=True
    ).stdout
    os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(lat.get("50", "0ms")),
        "p99_ms": _ms(lat.get("99", "0ms")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(requests),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


class _Uvicorn:
    """An ASGI app of bench/ on 2 uvicorn workers, each with its own socket as in
    `collector serve` (bench/serve.py): the bare baseline, or the collector without
    storage (`factory`, with the collector's settings in the environment)."""

    def __init__(self, target: str, *, factory: bool = False, db: Path | None = None) -> None:
        self.target = target
        self.factory = factory
        self.env = Settings.from_env(db=str(db), workers=2).to_env() if db else {}
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Uvicorn:
        port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve",
                self.target,
                *(["--factory"] if self.factory else []),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        _wait(self.url + "/v1/event", post=True)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


def _wait(url: str, post: bool = False) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = httpx.post(url, content=b"{}") if post else httpx.get(url)
            if r.status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling for readiness
    raise RuntimeError(f"{url} did not come up")


def bench_app(db: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The app the benchmark writes to (no rate limits), with the headers of its browser
    requests and of its server requests (API key)."""
    app = create_app(
        db, "bench", "--origin", ORIGIN, "--rate-limit-app", "0", "--rate-limit-ip", "0"
    )
    browser = {
        "Content-Type": "text/plain",
        "Origin": ORIGIN,
        "User-Agent": UA,
        "Accept-Language": "en",
    }
    server_key = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {app['api_key']}",
    }
    return app, browser, server_key


def run(
    duration: int = 5,
    connections: int = 64,
    batch_size: int = 50,
    rounds: int = 3,
    without_storage: bool = False,
) -> dict[str, Any]:
    """`rounds` rounds of bare → single → batch against servers that stay up, so each
    ratio pairs runs seconds apart; the machine's speed drifts more than that between
    minutes (measured: the same build gave 8k and 14k req/s ten minutes apart). With
    `without_storage`, each round also runs single and batch against the collector with
    its store's write path taken out (bench/without_storage.py)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    per_round: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        db = Path(tmp) / "bench.db"
        app, browser, server_key = bench_app(db)
        bare = servers.enter_context(_Uvicorn("bench.bare_app:app"))
        collector = servers.enter_context(CollectorProcess(db, workers=2))
        assert bare.proc is not None and collector.proc is not None
        single = _LUA_SINGLE % {"app_id": app["app_id"]}
        batch = _LUA_BATCH % {"size": batch_size}
        targets = {
            "bare": (bare.url, _LUA_SINGLE % {"app_id": "app_bare"}, browser, bare.proc.pid),
            "single": (collector.url, single, browser, collector.proc.pid),
            "batch": (collector.url, batch, server_key, collector.proc.pid),
        }
        if without_storage:
            nostore = servers.enter_context(
                _Uvicorn("bench.without_storage:app_from_env", factory=True, db=db)
            )
            assert nostore.proc is not None
            targets["single_nostore"] = (nostore.url, single, browser, nostore.proc.pid)
            targets["batch_nostore"] = (nostore.url, batch, server_key, nostore.proc.pid)
        acked = {name: 0.0 for name in targets}
        for name, (url, script, headers, _) in targets.items():
            acked[name] += _acked(_wrk_once(url, script, headers, WARMUP_S, connections))
        _drain(db)
        for _ in range(rounds):
            results = {
                name: _wrk(
                    url,
                    script,
                    headers,
                    duration,
                    connections,
                    pgid,
                    db if name in ("single", "batch") else None,
                )
                for name, (url, script, headers, pgid) in targets.items()
            }
            for name, result in results.items():
                size = batch_size if name.startswith("batch") else 1
                result["events_per_s"] = result["rps"] * size
                if name != "bare":
                    result["ratio_to_bare"] = result["rps"] / results["bare"]["rps"]
                acked[name] += result["acked"]
            per_round.append(results)
        index_all(db)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    # Every event is new, so what was acknowledged must all be stored (a few more may be:
    # wrk stops without reading the answers to requests still in flight).
    acknowledged = int(acked["single"] + acked["batch"] * batch_size)
    median = {
        name: {
            key: statistics.median(r[name][key] for r in per_round) for key in per_round[0][name]
        }
        for name in targets
    }
    return {
        "median": median,
        "rounds": per_round,
        "stored": stored,
        "acknowledged": acknowledged,
        "modules": native.status(),  # the collector's and the storage-free app's alike
    }


_LABELS = {
    "bare": "bare Starlette, parse JSON only",
    "single": "/v1/event browser path, durable",
    "batch": "/v1/events 50-event batches",
    "single_nostore": "/v1/event, storage taken out",
    "batch_nostore": "/v1/events batches, storage taken out",
}


def report(results: dict[str, Any]) -> str:
    lines = [
        f"{'endpoint (2 workers), median of rounds':<40}{'req/s':>9}{'events/s':>11}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'vs bare':>9}{'non-2xx':>9}{'server CPU µs/req':>19}",
    ]
    for key, r in results["median"].items():
        lines.append(
            f"{_LABELS[key]:<40}{r['rps']:>9.0f}{r['events_per_s']:>11.0f}{r['p50_ms']:>8.2f}"
            f"{r['p99_ms']:>8.2f}{r.get('ratio_to_bare', 1.0):>8.1%} {r['non2xx']:>8.0f}"
            f"{r['cpu_us_per_req']:>19.1f}"
        )
    for key in ("single", "batch"):
        r = results["median"][key]
        rate = r["backlog"] / r["drain_s"] if r["drain_s"] else 0.0
        lines.append(
            f"{_LABELS[key]}: the indexer was {r['backlog']:.0f} events behind when the run "
            f"ended, and caught up in {r['drain_s']:.1f} s ({rate:.0f} events/s)"
        )
    lines.append("rounds (req/s bare / single / batch events/s; single vs bare):")
    for i, r in enumerate(results["rounds"], 1):
        line = (
            f"  {i}: {r['bare']['rps']:>7.0f} / {r['single']['rps']:>7.0f} / "
            f"{r['batch']['events_per_s']:>7.0f}; {r['single']['ratio_to_bare']:.1%}"
        )
        if "single_nostore" in r:
            line += (
                f"   storage taken out: {r['single_nostore']['rps']:>7.0f} / "
                f"{r['batch_nostore']['events_per_s']:>7.0f}; "
                f"{r['single_nostore']['ratio_to_bare']:.1%}"
            )
        lines.append(line)
    lines.append(
        f"collector events acknowledged (2xx): {results['acknowledged']}, "
        f"stored: {results['stored']}"
        + (
            ""
            if results["stored"] >= results["acknowledged"]
            else "  <- fewer stored than acknowledged: events lost, or message ids repeated"
        )
    )
    lines.append(f"collector's hot modules: {results['modules']} (collector/native.py)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--without-storage",
        action="store_true",
        help="also measure the collector with its store's write path taken out",
    )
    args = parser.parse_args()
    results = run(
        args.duration, args.connections, rounds=args.rounds, without_storage=args.without_storage
    )
    print(report(results))


if __name__ == "__main__":
    main()
