"""Observability: `GET /metrics` for Prometheus, the request counts behind it, and the
access log (`--access-log`).

Every answered request is observed once: the ingestion endpoint, which runs before
Starlette's middleware, calls `Observer.observe` itself; every other route passes
through `ObserveMiddleware`. Requests are counted by route template (`/v1/users/{user_id:path}`,
never the user id) and status; a path that is no route counts as `other`.

The access log is one JSON object a line on stderr: time, worker, client address,
method, path (without the query string), route, status, duration, user agent. No
header that carries a secret (Authorization, Cookie), no query string, no body.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector as PromCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.errors import StoreUnavailable, Unavailable
from collector.ingest.metrics import FLUSH_S, Tally
from collector.store import Store

access = logging.getLogger("collector.access")

OTHER = "other"


def access_logger() -> logging.Logger:
    """The access log's logger: JSON lines as they are, on stderr, not through the
    server's log format."""
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    return access


class Observer:
    """Counts each answered request (and logs it, with the access log on)."""

    def __init__(self, tally: Tally, access_log: bool) -> None:
        self.tally = tally
        self.log = access_logger() if access_log else None
        self.pid = os.getpid()

    def observe(self, scope: Scope, route: str, status: int, started: float) -> None:
        self.tally.request(route, status)
        if self.log is not None:
            self._log(scope, route, status, started)

    def _log(self, scope: Scope, route: str, status: int, started: float) -> None:
        client = scope.get("client")
        agent = ""
        for name, value in scope.get("headers", ()):
            if name == b"user-agent":
                agent = value.decode("latin-1")
                break
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "worker": self.pid,
            "client": client[0] if client else None,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "user_agent": agent,
        }
        assert self.log is not None
        self.log.info(orjson.dumps(line).decode())


class ObserveMiddleware:
    """Observes every request that goes through Starlette's routing."""

    def __init__(self, app: ASGIApp, observer: Observer) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observer = self.observer
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            observer.observe(scope, getattr(route, "path", OTHER), status, started)


class _Backlog(PromCollector):
    """Events accepted but not indexed yet, counted in the database when scraped."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Any:
        # The one figure read from the database: while it cannot be reached, the scrape
        # leaves it out (and says so in telltale_database_up) rather than failing whole,
        # which would hide every other metric exactly during the outage.
        try:
            backlog = self.store.backlog()
        except (Unavailable, StoreUnavailable):
            backlog = None
        up = GaugeMetricFamily(
            "telltale_database_up", "1 if the database answered this scrape, else 0."
        )
        up.add_metric([], 0.0 if backlog is None else 1.0)
        yield up
        if backlog is not None:
            gauge = GaugeMetricFamily(
                "telltale_indexer_backlog_events", "Events accepted but not indexed yet."
            )
            gauge.add_metric([], float(backlog))
            yield gauge


def render(store: Store) -> bytes:
    """Every process's metrics (multiprocess mode), or this process's; and the backlog."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    backlog = CollectorRegistry()
    backlog.register(_Backlog(store))
    return generate_latest(registry) + generate_latest(backlog)


async def metrics_endpoint(request: Request) -> Response:
    collector = request.app.state.collector
    collector.tally.flush()
    body = await asyncio.to_thread(render, collector.store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def flushing(tally: Tally) -> AsyncIterator[None]:
    """Hand the tally to the client every FLUSH_S while serving, and once at the end."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            tally.flush()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        tally.flush()
