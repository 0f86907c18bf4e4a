"""The collector's Prometheus metrics, with the official client library (`/metrics`,
web/metrics.py, exposes them).

Several worker processes (and the indexer) each count their own: `collector serve` gives
every run a directory of its own in `PROMETHEUS_MULTIPROC_DIR`, where the client keeps
each process's values in a memory-mapped file, and a scrape adds them up
(prometheus_client's multiprocess mode). Without that variable (an app embedded in a
test), the values live in this process.

The hot path does not touch the client: a request, and the writer after each group
commit, add to plain dicts and lists (`Tally`), which are handed to the client once a
second and before each scrape. In multiprocess mode each of the client's updates is a
locked write to a memory-mapped file (~1.3 µs; an observation of a histogram is two), so
a commit recorded as it happened would cost ~10 µs of the event loop; handed over in a
batch, a second's worth of commits costs a few updates.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Counts
from collections.abc import Sequence
from operator import itemgetter

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

_STATUS = itemgetter(0)  # Outcome.status
FLUSH_S = 1.0  # how long counts may wait in a process's Tally before the client sees them


class Tally:
    """Per-process counts that the hot path adds to cheaply; `flush` hands them to the
    client."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.events: dict[str, int] = {}
        self.bots: dict[str, int] = {}
        self.commit_sizes: list[float] = []
        self.commit_seconds: list[float] = []
        self.outcomes: Counts[str] = Counts()
        self.queue: int | None = None

    def request(self, path: str, status: int) -> None:
        key = (path, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def event(self, outcome: str, count: int = 1) -> None:
        self.events[outcome] = self.events.get(outcome, 0) + count

    def bot(self, reason: str) -> None:
        self.bots[reason] = self.bots.get(reason, 0) + 1

    def commit(self, outcomes: Sequence[Outcome], seconds: float, waiting: int) -> None:
        """One group commit: its size, how long it took, its events' outcomes, and what
        is still queued behind it."""
        self.commit_sizes.append(len(outcomes))
        self.commit_seconds.append(seconds)
        # Counted in C (Counter.update), not by a Python loop over the events.
        self.outcomes.update(map(_STATUS, outcomes))
        self.queue = waiting

    def flush(self) -> None:
        requests, self.requests = self.requests, {}
        events, self.events = self.events, {}
        outcomes, self.outcomes = self.outcomes, Counts()
        bots, self.bots = self.bots, {}
        sizes, self.commit_sizes = self.commit_sizes, []
        seconds, self.commit_seconds = self.commit_seconds, []
        for (path, status), n in requests.items():
            REQUESTS.labels(path, str(status)).inc(n)
        for outcome, n in events.items():
            outcomes[outcome] += n
        for outcome, n in outcomes.items():
            EVENTS.labels(outcome).inc(n)
        for reason, n in bots.items():
            BOTS.labels(reason).inc(n)
        observe_many(COMMIT_SIZE, sizes)
        observe_many(COMMIT_SECONDS, seconds)
        if self.queue is not None:
            QUEUE.set(self.queue)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each value, as one update per bucket touched and one of
    the sum. The client has no public call for this: it reaches the histogram's own
    bucket and sum values (tests/test_metrics.py checks the result equals observe()'s,
    and a client without them gets observe() one value at a time)."""
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        # The first bucket whose upper bound is at least the value (le: <=), as observe().
        counts[bisect_left(bounds, value)] += 1
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    total.inc(sum(values))
