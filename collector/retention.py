"""Retention: each app keeps its events for its `retention_days` (0: for ever), enforced
in the background by the indexer process (every `retention_interval` seconds) and on
demand by `collector purge`. Each pass is logged per app that lost events, and counted
(`telltale_retention_purged_events_total`, `telltale_retention_runs_total`)."""

from __future__ import annotations

import logging
import time

from collector.ingest import metrics
from collector.models import App
from collector.store.base import Store
from collector.timeutil import now_ms

log = logging.getLogger("collector.retention")

DAY_MS = 86_400_000


def cutoff_ms(app: App, now: int) -> int | None:
    """Events of `app` before this time are past its retention; None: kept for ever."""
    days = int(app.setting("retention_days") or 0)
    return now - days * DAY_MS if days > 0 else None


def enforce(store: Store, now: int | None = None) -> dict[str, int]:
    """Delete every app's events past its retention; events deleted, by app."""
    at = now_ms() if now is None else now
    purged: dict[str, int] = {}
    for app in store.list_apps():
        cutoff = cutoff_ms(app, at)
        if cutoff is not None:
            purged[app.app_id] = _purge(store, app, cutoff)
    metrics.RETENTION_RUNS.inc()
    return purged


def enforce_app(store: Store, app: App, cutoff: int) -> int:
    """Delete `app`'s events before `cutoff` (its retention's), logged and counted."""
    return _purge(store, app, cutoff)


def _purge(store: Store, app: App, cutoff: int) -> int:
    n = store.purge(app.app_id, cutoff)
    if n:
        metrics.RETENTION_PURGED.labels(app.app_id).inc(n)
        log.info(
            "retention: deleted %d events of %s older than %s days",
            n,
            app.app_id,
            app.setting("retention_days"),
        )
    return n


class Schedule:
    """When the next background pass is due: at start, then every `interval` seconds
    (0: never)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = time.monotonic()

    def due(self) -> bool:
        if self.interval <= 0 or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.interval
        return True
