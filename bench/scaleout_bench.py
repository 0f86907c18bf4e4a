"""Scale-out: ingest with 1, 2 and 3 collectors on one PostgreSQL, and where the CPU goes.

    python -m bench.scaleout_bench [--collectors 1,2,3] [--shape single|batch]...
                                   [--duration 20] [--connections 32]
    (or: python -m bench --only scaleout)

Each configuration gets a fresh database on one throwaway PostgreSQL server
(tests/pgcluster.py, fsync on) and N `collector serve` processes (one worker each, with
their indexers), each loaded by a wrk of its own with `--connections` connections:
browser events one a request (`single`: Origin, a real User-Agent, enrichment) or
50-event batches with an API key (`batch`). After a warm-up, everything pending is
indexed; then the measured run; then what the run accepted and the collectors' indexers
(which work while the CPU has room) left pending is indexed by this process, as an
indexer would (the drain), its CPU counted as the collectors'.

Reported for each: events/s acknowledged, p50/p99 (wrk's distributions merged), and CPU
per event read from /proc/<pid>/stat: the collectors (every process of each one's group:
its worker and its indexer) and PostgreSQL (the postmaster and every process it
forked: backends, WAL writer, checkpointer), over the run and over run + drain (the
indexing of what the run accepted). From these it projects what N collectors on N
machines would sustain before PostgreSQL saturates: PostgreSQL's CPU per event sets the
ceiling (its cores over its CPU per event), the collectors' sets how many hosts reach it.
Also the database's transactions committed (every transaction of the run: group
commits, indexing, the rate-limit syncs) per event, and WAL bytes per event.

The machine's load average is printed beside the figures: on a shared 2-core machine the
collectors, PostgreSQL and wrk compete for the same cores, so the absolute events/s say
more about the machine than about the design; the CPU per event is the portable figure.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.ingest_bench import (
    _LUA_BATCH,
    _LUA_SINGLE,
    _group_cpu_s,
    _wrk_once,
    bench_app,
    merged_quantile,
)
from collector.store import open_store
from tests.pgcluster import PostgresCluster
from tests.server import CollectorProcess

BATCH = 50
WARMUP_S = 3


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(data_dir: Path) -> float:
    """CPU seconds of the postmaster (its pid is postmaster.pid's first line) and of every
    live process it forked. A backend that exited takes its time with it: the collectors
    keep their connections for the whole run, so few do."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = _cpu_s(postmaster)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:  # ppid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Cpu:
    collectors: list[float]
    postgres: float

    @classmethod
    def read(cls, procs: list[CollectorProcess], data_dir: Path) -> Cpu:
        pgids = [p.proc.pid for p in procs if p.proc is not None]
        return cls([_group_cpu_s(g) for g in pgids], postgres_cpu_s(data_dir))

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            [a - b for a, b in zip(self.collectors, other.collectors, strict=True)],
            self.postgres - other.postgres,
        )


def _server_counters(url: str) -> tuple[int, int]:
    """(transactions committed in the database, WAL bytes written by the server)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _load(
    procs: list[CollectorProcess], script: str, headers: dict[str, str], seconds: int, conns: int
) -> list[dict[str, Any]]:
    """One wrk per collector, all at once."""
    with ThreadPoolExecutor(len(procs)) as pool:
        runs = pool.map(lambda p: _wrk_once(p.url, script, headers, seconds, conns), procs)
        return list(runs)


def _index_rest(store: Any) -> tuple[float, float]:
    """Index what is still pending from here, as a collector's indexer would (theirs run
    only while the CPU has room, which a shared machine may not give them); (seconds,
    CPU seconds this process spent on it)."""
    started, cpu = time.monotonic(), time.process_time()
    store.index_all()
    return time.monotonic() - started, time.process_time() - cpu


def run_one(
    cluster: PostgresCluster, n: int, shape: str, duration: int, connections: int
) -> dict[str, Any]:
    url = cluster.create_database()
    store = open_store(url)
    store.migrate()
    app, browser, server_key = bench_app(url)
    if shape == "single":
        script, headers, size = _LUA_SINGLE % {"app_id": app["app_id"]}, browser, 1
    else:
        script, headers, size = _LUA_BATCH % {"size": BATCH}, server_key, BATCH
    procs = [CollectorProcess(url) for _ in range(n)]
    try:
        for p in procs:
            p.start(timeout=90)
        _load(procs, script, headers, WARMUP_S, connections)
        store.index_all()
        os.sync()
        before = Cpu.read(procs, cluster.data_dir)
        counters = _server_counters(url)
        load_before = os.getloadavg()[0]
        runs = _load(procs, script, headers, duration, connections)
        loadavg = os.getloadavg()[0]
        after_run = Cpu.read(procs, cluster.data_dir)
        # pg_stat_database lags by up to a second (stats are flushed by the backends).
        time.sleep(1.0)
        commits_after, wal_after = _server_counters(url)
        commits, wal = commits_after - counters[0], wal_after - counters[1]
        backlog = store.backlog()
        drain_s, drain_cpu = _index_rest(store)
        after_drain = Cpu.read(procs, cluster.data_dir)
        after_drain.collectors[0] += drain_cpu  # the indexing a collector would have done
    finally:
        for p in procs:
            p.stop()
        store.close()
        cluster.drop_database(url)
    acked = [(r["requests"] - r["non2xx"]) * size for r in runs]  # events, per collector
    seconds = max(r["seconds"] for r in runs)
    events = sum(acked)
    run_cpu, all_cpu = after_run - before, after_drain - before
    return {
        "n": n,
        "shape": shape,
        "events_per_s": events / seconds,
        "p50_ms": merged_quantile(runs, 50),
        "p99_ms": merged_quantile(runs, 99),
        "non2xx": sum(r["non2xx"] for r in runs),
        "errors": sum(r["socket_errors"] for r in runs),
        "backlog": backlog,
        "events_per_commit": events / max(1, commits),
        "wal_bytes_per_event": wal / max(1, events),
        "drain_s": drain_s,
        "loadavg": (load_before, loadavg),
        # µs of CPU per acknowledged event: each collector's per event it acknowledged,
        # all collectors' and PostgreSQL's per event acknowledged by any
        "collector_us": [
            c / max(1, a) * 1e6 for c, a in zip(run_cpu.collectors, acked, strict=True)
        ],
        "collectors_us": sum(run_cpu.collectors) / events * 1e6,
        "postgres_us": run_cpu.postgres / events * 1e6,
        "collector_all_us": [c / events * 1e6 for c in all_cpu.collectors],
        "postgres_all_us": all_cpu.postgres / events * 1e6,
    }


def report(results: list[dict[str, Any]], cores: int) -> None:
    print(
        f"\n{'shape':7}{'N':>3}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'each coll µs/ev':>18}{'all coll':>9}{'pg':>7}{'+ indexing: coll':>18}{'pg':>7}"
        f"{'backlog':>9}{'ev/xact':>8}{'WAL B/ev':>9}{'load avg':>10}"
    )
    for r in results:
        each = "/".join(f"{c:.0f}" for c in r["collector_us"])
        coll_all = sum(r["collector_all_us"])
        print(
            f"{r['shape']:7}{r['n']:>3}{r['events_per_s']:>10,.0f}{r['p50_ms']:>8.1f}"
            f"{r['p99_ms']:>8.1f}{each:>18}{r['collectors_us']:>9.1f}{r['postgres_us']:>7.1f}"
            f"{coll_all:>18.1f}"
            f"{r['postgres_all_us']:>7.1f}{r['backlog']:>9,}{r['events_per_commit']:>8.1f}"
            f"{r['wal_bytes_per_event']:>9.0f}{r['loadavg'][1]:>10.1f}"
            + (f"  non-2xx {r['non2xx']:.0f}" if r["non2xx"] else "")
            + (f"  socket errors {r['errors']:.0f}" if r["errors"] else "")
        )
    print(
        f"\nProjection (per-event CPU of the largest N, including indexing; "
        f"{cores} cores per machine):"
    )
    for shape in dict.fromkeys(r["shape"] for r in results):
        rows = [r for r in results if r["shape"] == shape]
        r = max(rows, key=lambda x: x["n"])
        coll = sum(r["collector_all_us"])  # all collectors together, per event
        pg = r["postgres_all_us"]
        per_host = cores / coll * 1e6
        ceiling = cores / pg * 1e6
        hosts = ceiling / per_host
        print(
            f"  {shape}: one collector host ~{per_host:,.0f} events/s; PostgreSQL on "
            f"{cores} cores saturates at ~{ceiling:,.0f} events/s, reached with "
            f"~{hosts:.1f} collector hosts"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collectors", default="1,2,3")
    parser.add_argument("--shape", action="append", choices=["single", "batch"])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32, help="per collector")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    # A SIGTERM (`timeout`, a CI job ending) unwinds as Ctrl-C does, so the collectors
    # and the PostgreSQL server this started are stopped rather than left running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    counts = [int(n) for n in args.collectors.split(",")]
    shapes = args.shape or ["single", "batch"]
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs", flush=True)
    results = []
    with PostgresCluster() as cluster:
        for shape in shapes:
            for n in counts:
                result = run_one(cluster, n, shape, args.duration, args.connections)
                results.append(result)
                print(
                    f"  {shape} N={n}: {result['events_per_s']:,.0f} events/s "
                    f"(load average {result['loadavg'][1]:.1f})",
                    flush=True,
                )
    report(results, args.cores)


if __name__ == "__main__":
    main()
