"""The sync of shared rate limits (ingest/ratelimit.py): every `SYNC_S`, what this
process spent goes to the database in one statement, off the event loop, and the
buckets take the database's answer. A request never waits on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from collector.ingest.ratelimit import SYNC_S, RateLimiter
from collector.store.base import Store

log = logging.getLogger("collector.ingest.ratesync")


async def share_limits(
    store: Store, limiter: Callable[[], RateLimiter], interval: float = SYNC_S
) -> None:
    """Run until cancelled. `limiter` is called each round (tests swap the collector's
    limiter for one with a stopped clock, which is not shared and sends nothing)."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        current = limiter()
        usage = current.take_usage()
        if not usage:
            continue
        try:
            tokens = await asyncio.to_thread(store.share_rate_usage, usage)
        except Exception as exc:  # the database is away: each process limits alone
            current.restore()
            if not failing:
                log.warning("rate limits not shared while the database is away: %s", exc)
            failing = True
            continue
        if failing:
            log.warning("rate limits shared again")
            failing = False
        current.reconcile(tokens)
