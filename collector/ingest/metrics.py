"""The collector's Prometheus metrics, with the official client library (`/metrics`,
web/metrics.py, exposes them).

Several worker processes (and the indexer) each count their own: `collector serve` gives
every run a directory of its own in `PROMETHEUS_MULTIPROC_DIR`, where the client keeps
each process's values in a memory-mapped file, and a scrape adds them up
(prometheus_client's multiprocess mode). Without that variable (an app embedded in a
test), the values live in this process.

The hot path does not touch the client per request: a request adds to a plain dict
(`Tally`), which is handed to the client's counters once a second and before each
scrape; the writer records once per group commit, not per event.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from collector.models import Outcome

REQUESTS = Counter(
    "telltale_http_requests", "HTTP requests answered, by route and status.", ["path", "status"]
)
EVENTS = Counter(
    "telltale_events",
    "Events by outcome: accepted, duplicate, discarded (rules, bot policy), invalid.",
    ["outcome"],
)
BOTS = Counter("telltale_bots", "Events detected as bots, by reason.", ["reason"])
QUEUE = Gauge(
    "telltale_write_queue_events",
    "Events waiting for the group commit (summed over live workers).",
    multiprocess_mode="livesum",
)
COMMIT_SIZE = Histogram(
    "telltale_group_commit_events",
    "Events written per group commit.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
COMMIT_SECONDS = Histogram(
    "telltale_group_commit_seconds",
    "Time a group commit took (the transaction and its flush to disk).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RETENTION_PURGED = Counter(
    "telltale_retention_purged_events",
    "Events deleted by the apps' retention_days (background and `collector purge`).",
    ["app_id"],
)
RETENTION_RUNS = Counter("telltale_retention_runs", "Retention passes over every app.")

FLUSH_S = 1.0  # how long counts may wait in a process's Tally before the client sees them


class Tally:
    """Per-process counts that the hot path adds to cheaply; `flush` hands them to the
    client's counters (a locked write to a memory-mapped file each, in multiprocess
    mode)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.events: dict[str, int] = {}
        self.bots: dict[str, int] = {}

    def request(self, path: str, status: int) -> None:
        key = (path, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def event(self, outcome: str, count: int = 1) -> None:
        self.events[outcome] = self.events.get(outcome, 0) + count

    def bot(self, reason: str) -> None:
        self.bots[reason] = self.bots.get(reason, 0) + 1

    def flush(self) -> None:
        requests, self.requests = self.requests, {}
        events, self.events = self.events, {}
        bots, self.bots = self.bots, {}
        for (path, status), n in requests.items():
            REQUESTS.labels(path, str(status)).inc(n)
        for outcome, n in events.items():
            EVENTS.labels(outcome).inc(n)
        for reason, n in bots.items():
            BOTS.labels(reason).inc(n)


# The writer's outcomes, looked up once: `labels()` takes a lock and builds a key.
_OUTCOMES = {status: EVENTS.labels(status) for status in ("accepted", "duplicate", "discarded")}


def record_commit(outcomes: Sequence[Outcome], seconds: float, waiting: int) -> None:
    """One group commit: its size, how long it took, its events' outcomes, and what is
    still queued behind it (~10 µs in multiprocess mode, once per commit)."""
    COMMIT_SIZE.observe(len(outcomes))
    COMMIT_SECONDS.observe(seconds)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    for status, n in counts.items():
        _OUTCOMES[status].inc(n)
    QUEUE.set(waiting)
