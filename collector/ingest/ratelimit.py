"""Token buckets per app and per (app, client IP), kept in each worker process.

Each bucket is keyed by its app, so one app's flood empties only its own buckets. With
N workers every process enforces rate/N, which keeps the total at the configured rate
when the kernel spreads connections evenly."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(
        self,
        workers: int = 1,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock  # tests stop it, so that no bucket refills between requests
        self._share = 1 / max(1, workers)
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._max_keys = max_keys

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
            bucket = _Bucket(capacity, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0
        return max(1, math.ceil((cost - bucket.tokens) / rate))
