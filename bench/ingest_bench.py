"""Ingest throughput with wrk, sustained: the collector's browser path (Origin + real UA +
enrichment + durable group commit), 50-event batches on the server path, and a bare
Starlette endpoint that only parses the same JSON, served exactly as the collector is
(bench/serve.py) — all on 2 uvicorn workers, in one run, so the ratios are comparable on
a noisy machine.

    python -m bench.ingest_bench [--duration 60] [--window 10] [--rounds 3]
                                 [--connections 64] [--without-storage]
                                 [--db-url sqlite] [--db-url postgresql://…]

Each round runs every target for `--duration` seconds, one after the other (bare, then
each backend's single events and batches, then the storage-free collector), so each
ratio pairs runs a minute apart, not runs from different minutes of a drifting machine.
A run is wrk started again every `--window` seconds against the same server, which
keeps its state (backlog, caches) from one window to the next: each window's events/s
and p99 show whether the speed holds for the whole run; the whole run's figures are its
windows' requests over their time, and its p50 and p99 are merged from the windows'
latency distributions. After each batch run, one segment query is timed right away, on
the database the load just went to, and again once the database is idle.

`--without-storage` adds the collector with its store's write path taken out
(bench/without_storage.py): what storage costs, in the same run. `--db-url` chooses the
backends (bench/backends.py); by default a scratch database of each that can make one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import backends
from bench.query_bench import SEGMENTS
from collector import native
from collector.query.segments import parse_segment_query
from collector.settings import Settings
from tests.server import CollectorProcess, create_app, free_port

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


# The latency quantiles each wrk run prints when it ends (its `done` hook, which runs
# after the measured time), so the windows of a run can be merged into the run's p50 and
# p99: every percent up to 90, then every 0.1% up to 99.9, then every 0.01%.
QUANTILES: tuple[float, ...] = (
    *(float(p) for p in range(1, 90)),
    *(round(90 + i / 10, 1) for i in range(100)),
    *(round(99.9 + i / 100, 2) for i in range(1, 11)),
)
_LUA_DONE = (
    """
function done(summary, latency, requests)
  local out = {}
  for _, p in ipairs({"""
    + ", ".join(str(q) for q in QUANTILES)
    + """}) do
    out[#out + 1] = string.format("%d", latency:percentile(p))
  end
  io.write("QUANTILES_US " .. table.concat(out, " ") .. "\\n")
end
"""
)

# The segment query timed after each batch run (one of bench/query_bench.py's).
QUERY_NAME = "count gt 10 (power users)"
# The targets, checked in the report (single events: per backend, backends.py).
BATCH_TARGET_EVENTS_S = 100_000
BATCH_TARGET_P99_MS = 100.0
QUERY_TARGET_S = 1.0  # a query right after load: within this of its unloaded time


def _wrk_once(
    url: str, script: str, headers: dict[str, str], duration: int, connections: int
) -> dict[str, Any]:
    """One wrk run: req/s, requests, seconds, p50/p99, non-2xx, latency quantiles (µs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _LUA_DONE)
        path = f.name
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", path]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    run_token = uuid.uuid4().hex[:12]
    try:
        out = subprocess.run(
            [*cmd, url, "--", run_token], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    assert done is not None, out
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    quantiles = re.search(r"^QUANTILES_US (.*)$", out, re.M)
    return {
        "rps": rps,
        "p50_ms": _ms(lat.get("50", "0ms")),
        "p99_ms": _ms(lat.get("99", "0ms")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(done.group(1)),
        "seconds": _ms(done.group(2)) / 1000,
        "quantiles_us": [float(v) for v in quantiles.group(1).split()] if quantiles else [],
        "socket_errors": float(sum(int(n) for n in errors.groups())) if errors else 0.0,
        "output": out,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def merged_quantile(windows: Sequence[dict[str, Any]], q: float) -> float:
    """The latency (ms) at quantile `q` (percent) of all the windows' requests together.
    Each window's distribution is read at QUANTILES, and the requests between two of them
    are counted at the upper one, so the result errs high, by at most one step."""
    points: list[tuple[float, float]] = []
    for w in windows:
        previous = 0.0
        for p, value in zip(QUANTILES, w["quantiles_us"], strict=True):
            points.append((value, w["requests"] * (p - previous) / 100))
            previous = p
    if not points:
        return 0.0
    points.sort()
    wanted = sum(weight for _, weight in points) * q / 100
    seen = 0.0
    for value, weight in points:
        seen += weight
        if seen >= wanted * (1 - 1e-9):  # the weights are float sums
            return value / 1000
    return points[-1][0] / 1000


def _acked(result: dict[str, Any]) -> float:
    """Requests answered 2xx: for the collector, each one's events are committed."""
    return float(result["requests"] - result["non2xx"])


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


@dataclass
class Target:
    label: str
    url: str
    script: str
    headers: dict[str, str]
    pgid: int
    events_per_request: int = 1
    store: Any = None  # the collector's database (backends.open_store), to wait on
    app_id: str = ""
    backend: backends.Backend | None = None
    kind: str = ""  # "bare", "single", "batch", "single_nostore", "batch_nostore"
    server_log: Callable[[], str] | None = None


def _answered(target: Target, run: dict[str, Any]) -> dict[str, Any]:
    """A wrk run that got answers; a server that answered nothing stops the benchmark
    (with wrk's output and the server's), rather than being reported as zeros."""
    if run["requests"] == 0:
        log = target.server_log() if target.server_log else ""
        raise RuntimeError(
            f"{target.label}: no request answered in {run['seconds']:.0f} s\n"
            f"{run['output']}\n--- server output (last lines) ---\n"
            + "\n".join(log.splitlines()[-40:])
        )
    return run


def _measure(
    target: Target, duration: int, window: int, connections: int, warmup: int
) -> dict[str, Any]:
    """One warm-up run (discarded), then the measured run in windows of `window` seconds,
    back to back. Every target gets the same warm-up, so caches, the database's page
    cache and the interpreter's specialisation are warm in each. With a collector's
    database, everything pending is indexed before the measured run, so every run
    starts with nothing pending and shares the CPU with no indexing left over from
    another.
    Dirty pages are flushed before the measured run, for every target alike. Also the
    server's CPU time per request (all its processes)."""
    warm = _answered(
        target, _wrk_once(target.url, target.script, target.headers, warmup, connections)
    )
    if target.store is not None:
        _drain(target.store)
    # Earlier runs' writes (the indexer's above all: hundreds of MB after a batch run) go
    # to disk now rather than through kernel writeback during this run, where they would
    # queue ahead of the collector's fsyncs. Every target gets the same.
    os.sync()
    cpu_before = _group_cpu_s(target.pgid)
    started = time.perf_counter()
    windows = []
    for start in range(0, duration, window):
        slice_s = min(window, duration - start)
        window_run = _wrk_once(target.url, target.script, target.headers, slice_s, connections)
        windows.append(_answered(target, window_run))
    wall = time.perf_counter() - started
    cpu = _group_cpu_s(target.pgid) - cpu_before
    requests = sum(w["requests"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    size = target.events_per_request
    for w in windows:
        w["events_per_s"] = w["rps"] * size
    result: dict[str, Any] = {
        "rps": requests / seconds,
        "events_per_s": requests / seconds * size,
        "p50_ms": merged_quantile(windows, 50),
        "p99_ms": merged_quantile(windows, 99),
        "non2xx": sum(w["non2xx"] for w in windows),
        "socket_errors": sum(w["socket_errors"] for w in windows),
        "requests": requests,
        "cpu_us_per_req": cpu / max(1.0, requests) * 1e6,
        # wrk's start and its connections between windows, when no load was sent
        "gaps_s": max(0.0, wall - seconds),
        "windows": windows,
        "acked": _acked(warm) + sum(_acked(w) for w in windows),
    }
    if target.store is not None and target.kind == "batch":
        result.update(_query_after_load(target))
    elif target.store is not None:
        result["backlog"], result["drain_s"] = _drain(target.store)
    return result


def _query_after_load(target: Target) -> dict[str, float]:
    """Right after a batch run: how far behind the indexer was, one segment query timed
    at once (every read first indexes what is pending, so this is what a user asking
    then waits), then the same query once nothing is pending and nothing runs (one
    warm-up, the median of three)."""
    store = target.store
    query = parse_segment_query(
        {"match": "all", "conditions": SEGMENTS[QUERY_NAME]}, int(time.time() * 1000)
    )
    backlog = backends.backlog(store)
    started = time.perf_counter()
    store.segment(target.app_id, query)
    after_load = time.perf_counter() - started
    _drain(store)
    store.segment(target.app_id, query)
    idle = []
    for _ in range(3):
        started = time.perf_counter()
        store.segment(target.app_id, query)
        idle.append(time.perf_counter() - started)
    return {
        "backlog": float(backlog),
        "query_after_load_s": after_load,
        "query_idle_s": statistics.median(idle),
    }


def _drain(store: Any) -> tuple[float, float]:
    """Index everything accepted, from here, as a read does first (the collector's
    indexer may help: they take the write lock in turns); return (events pending at the
    start, seconds it took). Not left to the indexer alone: it indexes only while the
    machine has CPU to spare, which load from outside the benchmark can withhold for
    minutes, and each run must start with nothing pending."""
    start = time.perf_counter()
    first = backends.backlog(store)
    backends.index_all(store)
    return float(first), time.perf_counter() - start


class _Uvicorn:
    """An ASGI app of bench/ on 2 uvicorn workers served as `collector serve` serves the
    collector (bench/serve.py): the bare baseline, or the collector without storage
    (`factory`, with the collector's settings in the environment)."""

    def __init__(self, target: str, *, factory: bool = False, db: Path | str | None = None) -> None:
        self.target = target
        self.factory = factory
        self.env = Settings.from_env(db=str(db), workers=2).to_env() if db else {}
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    def output(self) -> str:
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

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
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        try:
            _wait(self.url + "/v1/event", post=True)
        except RuntimeError:
            raise RuntimeError(f"{self.target} did not come up:\n{self.output()}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()
        self._log.close()


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


def bench_app(db: Path | str) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The app the benchmark writes to (no rate limits), with the headers of its browser
    requests and of its server requests (API key)."""
    limits = ("--rate-limit-app", "0", "--rate-limit-ip", "0", "--rate-limit-events", "0")
    app = create_app(db, "bench", "--origin", ORIGIN, *limits)
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


_LABELS = {
    "bare": "bare Starlette, parse JSON only",
    "single": "/v1/event browser path, durable",
    "batch": "/v1/events 50-event batches",
    "single_nostore": "/v1/event, storage taken out",
    "batch_nostore": "/v1/events batches, storage taken out",
}


def run(
    duration: int = 60,
    connections: int = 64,
    batch_size: int = 50,
    rounds: int = 3,
    without_storage: bool = False,
    *,
    window: int = 10,
    warmup: int = WARMUP_S,
    db_urls: Sequence[str] = (),
) -> dict[str, Any]:
    """`rounds` rounds of bare → (single → batch on each backend) → storage-free
    collector, against servers that stay up, so each ratio pairs runs of the same round;
    the machine's speed drifts more than that between minutes (measured: the same build
    gave 8k and 14k req/s ten minutes apart). With `without_storage`, each round also runs
    single and batch against the collector with its store's write path taken out
    (bench/without_storage.py, on the first SQLite database)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    databases, skipped = backends.select(db_urls)
    per_round: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        bare = stack.enter_context(_Uvicorn("bench.bare_app:app"))
        assert bare.proc is not None
        batch = _LUA_BATCH % {"size": batch_size}
        targets: dict[str, Target] = {
            "bare": Target(
                _LABELS["bare"],
                bare.url,
                _LUA_SINGLE % {"app_id": "app_bare"},
                {},
                bare.proc.pid,
                kind="bare",
                server_log=bare.output,
            )
        }
        checks: list[tuple[str, Any, str, list[str]]] = []  # (backend, store, app, targets)
        nostore_db: str | None = None
        for i, database in enumerate(databases):
            database = database.make(Path(tmp), stack, f"bench{i}")
            app, browser, server_key = bench_app(database.url)
            if not targets["bare"].headers:
                targets["bare"].headers = browser
            store = backends.open_store(database.url)
            stack.callback(store.close)
            collector = stack.enter_context(CollectorProcess(database.url, workers=2))
            assert collector.proc is not None
            name = database.backend.name
            single = _LUA_SINGLE % {"app_id": app["app_id"]}
            for kind, script, headers, size in (
                ("single", single, browser, 1),
                ("batch", batch, server_key, batch_size),
            ):
                targets[f"{kind} {name}"] = Target(
                    f"{name} {_LABELS[kind]}",
                    collector.url,
                    script,
                    headers,
                    collector.proc.pid,
                    size,
                    store,
                    app["app_id"],
                    database.backend,
                    kind,
                    collector.output,
                )
            checks.append((name, store, app["app_id"], [f"single {name}", f"batch {name}"]))
            if without_storage and nostore_db is None and database.backend.key == "sqlite":
                nostore_db = database.url
                nostore_headers = (browser, server_key, single)
        if without_storage and nostore_db is None:
            skipped.append("storage taken out: not run, it needs a SQLite database")
        elif without_storage:
            nostore = stack.enter_context(
                _Uvicorn("bench.without_storage:app_from_env", factory=True, db=nostore_db)
            )
            assert nostore.proc is not None
            browser, server_key, single = nostore_headers
            for kind, script, headers, size in (
                ("single_nostore", single, browser, 1),
                ("batch_nostore", batch, server_key, batch_size),
            ):
                targets[kind] = Target(
                    _LABELS[kind],
                    nostore.url,
                    script,
                    headers,
                    nostore.proc.pid,
                    size,
                    kind=kind,
                    server_log=nostore.output,
                )
        acked = {name: 0.0 for name in targets}
        for name, t in targets.items():
            first = _wrk_once(t.url, t.script, t.headers, warmup, connections)
            acked[name] += _acked(_answered(t, first))
        for _, store, _, _ in checks:
            _drain(store)
        for _ in range(rounds):
            results = {
                name: _measure(t, duration, window, connections, warmup)
                for name, t in targets.items()
            }
            for name, result in results.items():
                if name != "bare":
                    result["ratio_to_bare"] = result["rps"] / results["bare"]["rps"]
                acked[name] += result["acked"]
            per_round.append(results)
        # Every event is new, so what was acknowledged must all be stored (a few more may
        # be: wrk stops without reading the answers to requests still in flight).
        stored = []
        for backend, store, app_id, names in checks:
            acknowledged = sum(int(acked[n] * targets[n].events_per_request) for n in names)
            stored.append((backend, acknowledged, backends.stored_events(store, app_id)))
    median = {
        name: {
            key: statistics.median(r[name][key] for r in per_round)
            for key, value in per_round[0][name].items()
            if isinstance(value, float)
        }
        for name in targets
    }
    return {
        "median": median,
        "rounds": per_round,
        "labels": {name: t.label for name, t in targets.items()},
        "targets": {name: t for name, t in targets.items()},
        "stored": stored,
        "skipped": skipped,
        "duration": duration,
        "window": window,
        "modules": native.status(),  # the collector's and the storage-free app's alike
    }


def _k(value: float) -> str:
    return f"{value / 1000:.1f}k"


def report(results: dict[str, Any]) -> str:
    targets: dict[str, Target] = results["targets"]
    rounds: list[dict[str, dict[str, Any]]] = results["rounds"]
    title = f"endpoint (2 workers), {results['duration']}-s runs, median of rounds"
    lines = [
        f"{title:<54}"
        f"{'req/s':>8}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'vs bare':>9}{'non-2xx':>9}"
        f"{'server CPU µs/req':>19}",
    ]
    for key, r in results["median"].items():
        lines.append(
            f"{results['labels'][key]:<54}{r['rps']:>8.0f}{r['events_per_s']:>10.0f}"
            f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r.get('ratio_to_bare', 1.0):>8.1%} "
            f"{r['non2xx']:>8.0f}{r['cpu_us_per_req']:>19.1f}"
        )
    window = results["window"]
    for i, r in enumerate(rounds, 1):
        lines.append(f"round {i}, {window}-s windows (events/s; p99 ms):")
        for key, t in targets.items():
            if t.kind not in ("bare", "single", "batch"):
                continue
            ws = r[key]["windows"]
            name = "bare" if t.kind == "bare" else f"{t.backend.name} {t.kind}"  # type: ignore[union-attr]
            lines.append(
                f"  {name:<18}"
                + " ".join(f"{_k(w['events_per_s']):>7}" for w in ws)
                + ";  p99 "
                + " ".join(f"{w['p99_ms']:.0f}" for w in ws)
            )
        gaps = [r[key]["gaps_s"] for key in targets]
        lines.append(f"  (wrk restarted between windows: {max(gaps):.2f} s idle at most a run)")
    for key, t in targets.items():
        if t.kind == "single":
            r = results["median"][key]
            rate = r["backlog"] / r["drain_s"] if r["drain_s"] else 0.0
            lines.append(
                f"{t.label}: {r['backlog']:.0f} events were not indexed yet when the run "
                f"ended (median of rounds); indexing them then took {r['drain_s']:.1f} s "
                f"({rate:.0f} events/s)"
            )
        if t.kind == "batch":
            per = "; ".join(
                f"{r[key]['backlog']:.0f} behind: {r[key]['query_after_load_s']:.2f} s "
                f"against {r[key]['query_idle_s']:.2f} s idle"
                for r in rounds
            )
            lines.append(
                f"{t.backend.name} segment query ({QUERY_NAME}) right after each batch "  # type: ignore[union-attr]
                f"run, by round: {per}"
            )
    lines.append("the issue's targets, round by round:")
    for key, t in targets.items():
        backend = t.backend
        if backend is None:
            continue
        if t.kind == "single":
            ratios = [r[key]["ratio_to_bare"] for r in rounds]
            met = sum(x >= backend.single_target for x in ratios)
            lines.append(
                f"  {backend.name} single events ≥ {backend.single_target:.0%} of bare: "
                + " / ".join(f"{x:.1%}" for x in ratios)
                + f"; met in {met} of {len(ratios)}"
            )
        if t.kind == "batch":
            runs = [(r[key]["events_per_s"], r[key]["p99_ms"]) for r in rounds]
            met = sum(e >= BATCH_TARGET_EVENTS_S and p <= BATCH_TARGET_P99_MS for e, p in runs)
            lines.append(
                f"  {backend.name} batches ≥ {BATCH_TARGET_EVENTS_S:,} events/s, "
                f"p99 ≤ {BATCH_TARGET_P99_MS:.0f} ms: "
                + " / ".join(f"{e:,.0f} at {p:.0f} ms" for e, p in runs)
                + f"; met in {met} of {len(runs)}"
            )
            gaps = [r[key]["query_after_load_s"] - r[key]["query_idle_s"] for r in rounds]
            met = sum(g <= QUERY_TARGET_S for g in gaps)
            lines.append(
                f"  {backend.name} query right after load ≤ {QUERY_TARGET_S:.0f} s over idle: "
                + " / ".join(f"+{g:.2f} s" for g in gaps)
                + f"; met in {met} of {len(gaps)}"
            )
    lines.append("rounds (req/s bare / single / batch events/s; single vs bare):")
    for i, r in enumerate(rounds, 1):
        parts = []
        for key, t in targets.items():
            if t.kind == "single":
                b = f"batch {t.backend.name}"  # type: ignore[union-attr]
                parts.append(
                    f"{t.backend.name} {r[key]['rps']:>7.0f} / "  # type: ignore[union-attr]
                    f"{r[b]['events_per_s']:>7.0f}; {r[key]['ratio_to_bare']:.1%}"
                )
        if "single_nostore" in r:
            parts.append(
                f"storage taken out {r['single_nostore']['rps']:>7.0f} / "
                f"{r['batch_nostore']['events_per_s']:>7.0f}; "
                f"{r['single_nostore']['ratio_to_bare']:.1%}"
            )
        lines.append(f"  {i}: bare {r['bare']['rps']:>7.0f}   " + "   ".join(parts))
    for backend, acknowledged, stored in results["stored"]:
        lines.append(
            f"{backend}: events acknowledged (2xx): {acknowledged}, stored: {stored}"
            + (
                ""
                if stored >= acknowledged
                else "  <- fewer stored than acknowledged: events lost, or message ids repeated"
            )
        )
    errors = [
        f"{results['labels'][key]} {r[key]['socket_errors']:.0f} in round {i}"
        for i, r in enumerate(rounds, 1)
        for key in targets
        if r[key]["socket_errors"]
    ]
    lines.append("wrk's socket errors: " + ("; ".join(errors) if errors else "none"))
    lines.extend(results["skipped"])
    lines.append(f"collector's hot modules: {results['modules']} (collector/native.py)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds per measured run")
    parser.add_argument("--window", type=int, default=10, help="seconds per reported window")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=WARMUP_S, help="seconds, before each run")
    parser.add_argument(
        "--without-storage",
        action="store_true",
        help="also measure the collector with its store's write path taken out",
    )
    parser.add_argument(
        "--db-url",
        action="append",
        default=[],
        help="a backend's database (repeatable): sqlite (a scratch file), a SQLite path, "
        "or a server database's URL; default: a scratch database of each backend",
    )
    args = parser.parse_args()
    results = run(
        args.duration,
        args.connections,
        rounds=args.rounds,
        without_storage=args.without_storage,
        window=args.window,
        warmup=args.warmup,
        db_urls=args.db_url,
    )
    print(report(results))


if __name__ == "__main__":
    main()
