"""The indexer: one process beside the workers, started by `collector serve`, that moves
accepted events into the indexed tables (`Store.index_some`), on either backend.

Ingest commits a group of events as inbox rows, which is what keeps the acknowledged
write cheap; indexing them (events and its indexes, identity links, person summaries)
is the expensive half, and it runs here, only while the machine has CPU to spare, so
that ingest keeps the CPU it needs (on SQLite the group commit has a file of its own,
`DB-inbox`, and never waits for an indexing transaction; reads catching up do). When
the CPU has room the indexer follows the inbox within a poll interval; when the
workers need every core, ingest goes first and the backlog grows, until half the
store's `max_backlog` is pending: from there the indexer works whatever the CPU, in
large chunks, and past the whole bound every commit also indexes as much as it adds.
Reads never depend on it: each one catches up first, and the bound keeps that wait
short.

    python -m collector.indexer DB PARENT_PID

DB is a SQLite path, or "-" for the database in COLLECTOR_DB (a PostgreSQL URL may
carry a password, which must not show in the process list).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from collector import retention
from collector.errors import Unavailable
from collector.settings import Settings
from collector.store import open_store
from collector.store.base import Store

log = logging.getLogger("collector.indexer")

POLL_S = 0.05  # how often an indexer that has caught up looks at the inbox again
CHUNK = 500  # events an indexing transaction takes: ~16 ms of CPU holding the write lock
# While half the backlog's bound is pending, the indexer works whatever the CPU: else
# the workers reach the bound and index a commit's worth at a time, in small chunks,
# which cost half as much again per event as these (random pages of the person index and
# summaries are written once per chunk, however many of its events they hold).
PRESSED_CHUNK = 5_000
YIELD_S = 0.001  # between full chunks: flock is not fair, a read catching up needs its turn
BUSY_S = 0.01  # how soon to look again while the CPU is busy
PRESSURE_CHECK_S = 0.1  # how often a busy indexer counts the backlog


def run(
    db: str,
    parent: int,
    idle: float,
    max_backlog: int,
    poll_s: float = POLL_S,
    retention_interval: float = 0.0,
) -> None:
    """Index until SIGTERM/SIGINT or until the parent process is gone, while at least
    `idle` of the machine's CPU is idle (settings: `indexer_idle`), or while half of
    `max_backlog` is pending. Every `retention_interval` seconds (0: never), delete the
    events past each app's retention (collector/retention.py): one process does it for
    the whole server."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    store = open_store(db)
    cpu = SpareCpu()
    pressure = Pressure(store, max_backlog // 2)
    schedule = retention.Schedule(retention_interval)
    failures = Failures()
    try:
        while not stopping and os.getppid() == parent:
            try:
                if schedule.due():
                    retention.enforce(store)
                pause = step(store, cpu, pressure, idle, poll_s)
                failures.succeeded()
                time.sleep(pause)
            except Exception as exc:
                # The accepted events stay where they are (the inbox); the next round, or
                # a read, indexes them. A database that went away comes back on its own.
                time.sleep(failures.failed(exc, poll_s))
    finally:
        store.close()


class Failures:
    """What the indexer logs of its failures, and how long it waits after one: the first
    of a run in full, then a line a minute while they go on, then the recovery. Retried
    every poll, a database down for an hour would otherwise log ~70,000 tracebacks; the
    store logs the outage itself once ("unreachable", "reachable again")."""

    EVERY_S = 60.0
    MAX_WAIT_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.count = 0  # failures in a row
        self.logged_at = 0.0

    def failed(self, exc: Exception, poll_s: float) -> float:
        """Log `exc` if it is due; return how long to wait before the next try."""
        self.count += 1
        now = self.clock()
        if self.count == 1:
            if isinstance(exc, Unavailable):  # the database is away: no traceback to read
                log.warning("indexing paused: %s", exc)
            else:
                log.error("indexing failed; retrying", exc_info=exc)
            self.logged_at = now
        elif now - self.logged_at >= self.EVERY_S:
            log.warning("indexing still failing after %d tries: %s", self.count, exc)
            self.logged_at = now
        return min(poll_s * float(2 ** min(self.count - 1, 10)), self.MAX_WAIT_S)

    def succeeded(self) -> None:
        if self.count:
            log.warning("indexing resumed after %d failed tries", self.count)
            self.count = 0


def step(store: Store, cpu: SpareCpu, pressure: Pressure, idle: float, poll_s: float) -> float:
    """One round of indexing (or of waiting); how long to sleep before the next."""
    if pressure.on():
        # Without waiting for the lock: a read catching up holds it, and has indexed.
        store.index_some(PRESSED_CHUNK, wait=False)
        return YIELD_S
    if idle and cpu.spare() < idle:
        # Ingest first: while the workers need the CPU, the backlog grows.
        return BUSY_S
    if store.index_some(CHUNK, wait=False) < CHUNK:
        # Caught up (or a read took the lock first): let a trickle of events gather,
        # rather than index them one commit at a time.
        return poll_s
    return YIELD_S


class Pressure:
    """Whether the backlog has reached `threshold` events, counted at most every
    `PRESSURE_CHECK_S` (a count is a query); on until it is below again."""

    def __init__(self, store: Store, threshold: int) -> None:
        self.store = store
        self.threshold = threshold
        self._on = False
        self._at = -1e9

    def on(self) -> bool:
        now = time.monotonic()
        if self._on or now - self._at >= PRESSURE_CHECK_S:
            self._at = now
            self._on = self.threshold > 0 and self.store.backlog() >= self.threshold
        return self._on


PROC_STAT = "/proc/stat"


class SpareCpu:
    """The share of the machine's CPU that was idle over the last `window` seconds (Linux
    /proc/stat; elsewhere always 1.0). The indexer's own use does not count as spare:
    otherwise, once running, it would keep its own gate open under load."""

    def __init__(self, window: float = 0.1) -> None:
        self.window = window
        self._last = self._read()
        self._at = time.monotonic()
        self._spare = 1.0

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open(PROC_STAT) as f:
                values = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        if len(values) < 8:  # not the "cpu" line we know
            return None
        return values[3] + values[4], sum(values)  # idle + iowait, all

    def spare(self) -> float:
        now = time.monotonic()
        if now - self._at >= self.window:
            current = self._read()
            if current is not None and self._last is not None and current[1] > self._last[1]:
                self._spare = (current[0] - self._last[0]) / (current[1] - self._last[1])
            self._last, self._at = current, now
        return self._spare


def main() -> None:
    db, parent = sys.argv[1], int(sys.argv[2])
    if db == "-":
        db = os.environ["COLLECTOR_DB"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    settings = Settings.from_env()
    run(
        db,
        parent,
        settings.indexer_idle,
        settings.max_backlog,
        retention_interval=settings.retention_interval,
    )


if __name__ == "__main__":
    main()
