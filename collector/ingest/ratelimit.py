"""Token buckets per app and per (app, client IP).

Each bucket is keyed by its app, so one app's flood empties only its own buckets.

On one host (SQLite) the buckets live in each worker process: with N workers every
process enforces rate/N, which keeps the total at the configured rate when the kernel
spreads connections evenly.

With a shared database (PostgreSQL, many collectors on many hosts) no process may hold
the whole budget, and no request may wait on a round trip to the database. So each
process keeps its buckets at the full rate and answers from them at once, and every
`SYNC_S` (ingest/ratesync.py) it sends what it spent on each bucket to the database, which
keeps one bucket per key for all of them (`Store.share_rate_usage`): refilled at the rate
by the database's clock, less everyone's spending. The answer replaces the local tokens
(less what was spent meanwhile). Between two syncs each of N processes may spend what
it refilled, so a bucket can go into debt by up to (N-1) * rate * SYNC_S, which everyone
then waits out: over a few seconds the total holds the configured rate. What a process
may spend from the shared bucket is handed to it one interval's refill (a lease) at a
time, so N processes finding a full bucket spend it in turns rather than N times over
(a burst is spent over about a second). A bucket this process has not synced lately
(new, or idle here while others spent) offers one lease until the next sync says what
is really left."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

SYNC_S = 0.2  # how often a shared limiter sends its spending to the database
_STALE_S = 1.0  # a bucket not synced for this long is not trusted beyond one interval
KEY_SEP = "\x1f"  # joins a bucket's key parts into the one text the database keys by

# (key, spent since the last sync, rate, capacity): what a sync sends for one bucket.
Usage = tuple[str, float, float, float]


class _Bucket:
    __slots__ = ("capacity", "rate", "spent", "synced", "tokens", "updated")

    def __init__(self, tokens: float, updated: float, rate: float, capacity: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.rate = rate
        self.capacity = capacity
        self.spent = 0.0  # taken since the last sync began (shared limiters only)
        self.synced = -math.inf  # when the database last said what this bucket holds


class RateLimiter:
    def __init__(
        self,
        workers: int = 1,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        shared: bool = False,
    ) -> None:
        self._clock = clock  # tests stop it, so that no bucket refills between requests
        self.shared = shared
        # A shared limiter enforces the whole rate, reconciled through the database.
        self._share = 1.0 if shared else 1 / max(1, workers)
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._in_flight: dict[tuple[str, ...], float] = {}  # spending a sync is sending
        # Buckets spent from since the last sync: a sync visits these, not every bucket
        # (up to max_keys of them, most of them idle per-IP buckets).
        self._spent: set[tuple[str, ...]] = set()

    def exhausted(self, key: tuple[str, ...], rate: float) -> int:
        """0 while the bucket holds a token, else the seconds until it will; takes nothing.
        Lets a request be refused before the work of reading it when its cost is known
        only afterwards (the events of a batch)."""
        bucket = self._buckets.get(key)
        if rate <= 0 or bucket is None:
            return 0
        rate *= self._share
        tokens = bucket.tokens + (self._clock() - bucket.updated) * rate
        if tokens >= 1:
            return 0
        return max(1, math.ceil((1 - tokens) / rate))

    def check(self, key: tuple[str, ...], rate: float, cost: float = 1.0) -> int:
        """Take `cost` tokens; 0 if allowed, else the seconds to wait (for Retry-After).

        `rate` is requests (or events) per second across all workers; a burst of 2 s of
        traffic is allowed, and a cost above that burst passes when the bucket is full
        (it would never pass otherwise). A rate of 0 disables the limit."""
        if rate <= 0:
            return 0
        rate *= self._share
        capacity = max(1.0, rate * 2)
        cost = min(cost, capacity)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            # Shared: one interval's refill until the database says what is left.
            start = min(capacity, _lease(rate)) if self.shared else capacity
            bucket = _Bucket(start, now, rate, capacity)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            bucket.rate, bucket.capacity = rate, capacity
            if self.shared and now - bucket.synced > _STALE_S:
                bucket.tokens = min(bucket.tokens, _lease(rate))
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            if self.shared:
                bucket.spent += cost
                self._spent.add(key)
            return 0
        return max(1, math.ceil((cost - bucket.tokens) / rate))

    # Shared limiters: what ingest/ratesync.py calls, on the event loop's thread.

    def take_usage(self) -> list[Usage]:
        """What each bucket spent since the last sync, to send to the database; until
        `reconcile` or `restore` the amounts are in flight."""
        usage: list[Usage] = []
        spent, self._spent = self._spent, set()
        for key in spent:
            bucket = self._buckets.get(key)
            if bucket is not None and bucket.spent > 0:
                usage.append((KEY_SEP.join(key), bucket.spent, bucket.rate, bucket.capacity))
                self._in_flight[key] = bucket.spent
                bucket.spent = 0.0
        return usage

    def reconcile(self, tokens: dict[str, float]) -> None:
        """The database's answer: each synced bucket holds what every process left in it,
        less what this one spent since the sync began."""
        now = self._clock()
        for key in self._in_flight:
            bucket = self._buckets.get(key)
            left = tokens.get(KEY_SEP.join(key))
            if bucket is None or left is None:
                continue
            bucket.tokens = min(bucket.capacity, _lease(bucket.rate), left) - bucket.spent
            bucket.updated = now
            bucket.synced = now
        self._in_flight.clear()

    def restore(self) -> None:
        """The sync failed (the database is away): the spending is sent next time, and
        meanwhile each process limits on its own."""
        for key, spent in self._in_flight.items():
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.spent += spent
                self._spent.add(key)
        self._in_flight.clear()


def _lease(rate: float) -> float:
    """The most a shared bucket's process may hold between two syncs."""
    return max(1.0, rate * SYNC_S)
