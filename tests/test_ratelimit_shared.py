"""Rate limits shared by collectors through PostgreSQL (ingest/ratelimit.py): three
limiters, as three collectors, each offered far more than the rate, hold the total to
the configured rate; none asks the database on a request."""

from __future__ import annotations

import asyncio
import time

import pytest

from collector.ingest.ratelimit import SYNC_S, RateLimiter
from collector.store import Store, open_store
from collector.store.sqlite.store import SQLiteStore
from tests.dbrows import rows


def run(
    store: Store, limiters: list[RateLimiter], key: tuple[str, ...], rate: float, seconds: float
) -> tuple[int, float]:
    """Offer each limiter requests as fast as this loop goes for `seconds`, syncing each
    every SYNC_S as ingest/ratesync.py does; (admitted, elapsed)."""
    admitted = 0
    started = time.monotonic()
    next_sync = started + SYNC_S
    while (now := time.monotonic()) - started < seconds:
        for limiter in limiters:
            for _ in range(5):
                admitted += limiter.check(key, rate) == 0
        if now >= next_sync:
            next_sync = now + SYNC_S
            for limiter in limiters:
                limiter.reconcile(store.share_rate_usage(limiter.take_usage()))
        time.sleep(0.002)  # offered load: ~3 x 2,500 requests/s, against 100/s
    return admitted, time.monotonic() - started


def test_three_collectors_hold_the_configured_rate_together(pg_url: str) -> None:
    store = open_store(pg_url)
    store.migrate()
    try:
        rate = 100.0
        limiters = [RateLimiter(shared=True) for _ in range(3)]
        admitted, elapsed = run(store, limiters, ("app", "app_x"), rate, 8.0)
    finally:
        store.close()
    # The bucket starts full (2 s of traffic), then refills at the rate.
    expected = rate * elapsed + 2 * rate
    assert abs(admitted - expected) <= 0.1 * expected, (admitted, expected)


def test_without_sharing_each_collector_would_admit_the_whole_rate(pg_url: str) -> None:
    """The same run with unshared limiters admits about three times as much: the
    measurement above can tell sharing from not sharing."""
    store = open_store(pg_url)
    store.migrate()
    try:
        limiters = [RateLimiter() for _ in range(3)]
        admitted, elapsed = run(store, limiters, ("app", "app_x"), 100.0, 2.0)
    finally:
        store.close()
    assert admitted > 2 * (100.0 * elapsed + 200)


def test_a_sync_that_fails_keeps_the_spending_for_the_next(pg_url: str) -> None:
    limiter = RateLimiter(shared=True, clock=lambda: 1000.0)
    for _ in range(3):
        assert limiter.check(("ip", "app_x", "10.0.0.1"), 50.0) == 0
    first = limiter.take_usage()
    assert first == [("ip\x1fapp_x\x1f10.0.0.1", 3.0, 50.0, 100.0)]
    limiter.restore()  # the database was away
    assert limiter.take_usage() == first
    store = open_store(pg_url)
    store.migrate()
    try:
        tokens = store.share_rate_usage(first)
    finally:
        store.close()
    assert tokens == {"ip\x1fapp_x\x1f10.0.0.1": 97.0}  # a full bucket, less what was spent
    limiter.reconcile(tokens)
    assert limiter.take_usage() == []


def test_sqlite_keeps_ingestion_rate_limits_in_each_process(tmp_path: object) -> None:
    store = open_store(str(tmp_path) + "/t.db")
    assert isinstance(store, SQLiteStore) and not store.shares_rate_limits
    store.close()


def test_a_shared_bucket_takes_refunds_up_to_its_capacity(store: Store) -> None:
    """What the dashboard's login limits (on both backends) need of the shared buckets:
    spending, and a refund that never fills a bucket past its capacity."""
    slow = ("login-account\x1fa@example.com", 1.0, 5 / 900, 5.0)
    for left in (4.0, 3.0, 2.0):
        assert store.share_rate_usage([slow]) == pytest.approx({slow[0]: left}, abs=0.01)
    store.share_rate_usage([(slow[0], -1.0, slow[2], slow[3])])
    assert store.share_rate_usage([(slow[0], 0.0, slow[2], slow[3])])[slow[0]] == pytest.approx(
        3.0, abs=0.01
    )
    store.share_rate_usage([(slow[0], -5.0, slow[2], slow[3])])  # a success clears it
    assert store.share_rate_usage([slow])[slow[0]] == pytest.approx(4.0, abs=0.01)


def test_a_quiet_collector_still_sweeps_refilled_buckets(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A per-IP bucket's key holds a visitor's address: once refilled, the row goes even
    # if this process spends nothing more (no request would have swept it).
    from collector.ingest import ratesync
    from collector.store.postgres import primitives

    # No sweep while the bucket is made; then one on every call, so the test waits on
    # the quiet loop's call only.
    monkeypatch.setattr(primitives, "RATE_SWEEP_S", 1e9)
    monkeypatch.setattr(primitives, "_sweep", {"at": time.monotonic()})
    store = open_store(pg_url)
    store.migrate()
    key = "ip\x1fapp_quiet\x1f203.0.113.7"

    def keys() -> list[str]:
        return [r[0] for r in rows(pg_url, "SELECT key FROM rate_buckets") if "app_quiet" in r[0]]

    async def quiet_for_a_while() -> None:
        task = asyncio.create_task(
            ratesync.share_limits(store, RateLimiter, interval=0.05, idle_sweep=0.1)
        )
        try:
            deadline = time.monotonic() + 30
            while keys() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    try:
        # One token spent from a bucket that refills 1,000 a second: refilled at once.
        store.share_rate_usage([(key, 1.0, 1000.0, 10.0)])
        assert keys() == [key]
        monkeypatch.setattr(primitives, "RATE_SWEEP_S", 0.0)
        asyncio.run(quiet_for_a_while())
        assert keys() == []
    finally:
        store.close()
