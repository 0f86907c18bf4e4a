"""The sync of shared rate limits (ingest/ratelimit.py): every `SYNC_S`, what this
process spent goes to the database in one statement, off the event loop, and the
buckets take the database's answer. A request never waits on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from collector.ingest.ratelimit import SYNC_S, RateLimiter
from collector.store.base import Store

log = logging.getLogger("collector.ingest.ratesync")


# How often an idle process still asks the database to sweep refilled buckets. A sync
# sweeps them anyway (store.share_rate_usage, at most every minute), but only when this
# process has spent something: on a collector gone quiet, a per-IP bucket's key (a
# visitor's address) would stay in the table until the next request.
IDLE_SWEEP_S = 60.0


async def share_limits(
    store: Store,
    limiter: Callable[[], RateLimiter],
    interval: float = SYNC_S,
    idle_sweep: float = IDLE_SWEEP_S,
) -> None:
    """Run until cancelled. `limiter` is called each round (tests swap the collector's
    limiter for one with a stopped clock, which is not shared and sends nothing)."""
    failing = False
    last_sync = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        current = limiter()
        usage = current.take_usage()
        if not usage:
            if time.monotonic() - last_sync >= idle_sweep:
                last_sync = time.monotonic()
                # No spending: only the sweep that goes with every sync. The database
                # may be away: the next round tries again.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(store.share_rate_usage, [])
            continue
        last_sync = time.monotonic()
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
