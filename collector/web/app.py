"""The Starlette application: routes, CORS, the error handler. Handlers only wire the
pipeline's steps together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from collector.dashboard.views import routes as dashboard_routes
from collector.errors import (
    CollectorError,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    field_error,
)
from collector.ingest.auth import canonical_origin, origin_allowed, request_origin
from collector.ingest.dialects.routes import ROUTES as DIALECT_ROUTES
from collector.ingest.ratesync import share_limits
from collector.query.segments import set_cursor_secret
from collector.query.types import AnalyticsQuery
from collector.settings import Settings
from collector.store import Store, open_store
from collector.timeutil import now_ms
from collector.web.api import routes as query_routes
from collector.web.assets import StaticAsset
from collector.web.demo import find_demo_app
from collector.web.ingest import Collector, IngestEndpoint, cors_headers
from collector.web.metrics import ObserveMiddleware, flushing, metrics_endpoint
from collector.web.posthog import FLAGS_PATHS
from collector.web.posthog import routes as posthog_routes
from collector.web.responses import JSONResponse, error_response

log = logging.getLogger("collector")

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
DEMO_DIR = Path(__file__).resolve().parent / "demo"
INGEST_PATHS = ("/v1/event", "/v1/events", "/events", "/api/v1/events", "/v1/track")
# Ours, then other products' (ingest/dialects/routes.py; /v1/track and /v1/identify are
# both).
_INGEST_ROUTES = tuple(dict.fromkeys((*INGEST_PATHS, "/v1/identify", *DIALECT_ROUTES)))
_INGEST = frozenset(_INGEST_ROUTES)
# What the libraries that post here send: analytics.js adds Basic auth and, on a retry,
# X-Retry-Count; server libraries may gzip.
_ALLOW_HEADERS = "Content-Type, Authorization, Content-Encoding, X-Retry-Count"


def _collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


class CollectorApp(Starlette):
    """Starlette, except that an ingestion path with a trailing slash is that path, and a
    POST to an ingestion path goes straight to `IngestEndpoint`, before the middleware
    stack: past the router, the exception middleware and the server-error middleware,
    whose wrapper around `send` alone cost ~1.5 µs a request (py-spy, in-process). Every
    other request, and every other method on those paths, takes the normal route."""

    ingest: IngestEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path not in _INGEST and path[-1:] == "/" and path[:-1] in _INGEST:
                # The router would answer a 307 to the path without the slash, which curl
                # without -L and most server libraries do not follow: the event is lost.
                path = path[:-1]
                scope = {**scope, "path": path}
            if scope["method"] == "POST" and path in _INGEST:
                scope["app"] = self
                await self.ingest(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def preflight(request: Request) -> Response:
    """CORS preflight, answered only for origins some app (or the named app) allows."""
    c = _collector(request)
    caller = request_origin(request.headers.get("origin"), None)
    app_id = request.query_params.get("app_id")
    if app_id:
        app = c.cache.by_id(app_id)
        origins = app.origins if app else []
    else:
        origins = c.cache.all_origins()
    if caller is None or not origin_allowed(origins, caller):
        raise Forbidden(errors=[field_error("origin", "is not an allowed origin")])
    headers = cors_headers(canonical_origin(caller))
    headers.update(
        {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOW_HEADERS,
            "Access-Control-Max-Age": "86400",
        }
    )
    return Response(status_code=204, headers=headers)


SDK_ASSET = StaticAsset(STATIC_DIR / "telltale.js", "application/javascript", 3600)
# Debug mode's console lines, which the script tag loads only when debug mode is on.
SDK_DEBUG_ASSET = StaticAsset(STATIC_DIR / "telltale-debug.js", "application/javascript", 3600)
SDK_MODULE_ASSET = StaticAsset(STATIC_DIR / "telltale.mjs", "application/javascript", 3600)
# The npm package (`npm install https://COLLECTOR/telltale.tgz`), as `npm pack` made it.
SDK_PACKAGE_ASSET = StaticAsset(
    STATIC_DIR / "telltale.tgz", "application/gzip", 3600, compress=False
)
DEMO_JS_ASSET = StaticAsset(DEMO_DIR / "demo.js", "application/javascript", 60)


async def sdk_js(request: Request) -> Response:
    return SDK_ASSET.response(request)


async def sdk_debug(request: Request) -> Response:
    return SDK_DEBUG_ASSET.response(request)


async def sdk_module(request: Request) -> Response:
    return SDK_MODULE_ASSET.response(request)


async def sdk_package(request: Request) -> Response:
    return SDK_PACKAGE_ASSET.response(request)


async def demo_js(request: Request) -> Response:
    return DEMO_JS_ASSET.response(request)


async def demo_page(request: Request) -> Response:
    c = _collector(request)
    if not c.settings.demo or c.demo_app_id is None:
        raise NotFound("No demo page: start with `collector serve --demo`")
    try:
        html = (DEMO_DIR / "index.html").read_text()
    except FileNotFoundError:
        raise NotFound("The demo page is missing") from None
    html = html.replace("{{APP_ID}}", c.demo_app_id).replace("{{SDK_SRC}}", "/sdk.js")
    return Response(html, media_type="text/html")


async def segment_settings(request: Request) -> Response:
    """The settings analytics.js loads before it sends anything (`cdnURL` pointed here):
    send to this collector, on the scheme and host the page asked, and report no metrics.
    The write key is the app id; CORS headers go only to the app's allowed origins."""
    c = _collector(request)
    app_id = request.path_params["write_key"]
    app = c.cache.by_id(app_id)
    if app is None:
        raise NotFound("Unknown app", [field_error("writeKey", "is not a known app id")])
    host = request.headers.get("host", request.url.netloc)
    api_host = f"{host}/v1"
    # An https page can only post over https: behind a proxy that ends TLS, the page's
    # scheme is the one to name, not the one this request arrived with.
    origin = request.headers.get("origin") or ""
    protocol = "https" if origin.startswith("https:") else request.url.scheme
    settings = {
        "integrations": {
            "Segment.io": {
                "apiKey": app_id,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
            }
        },
        "plan": {"track": {"__default": {"enabled": True}}, "identify": {"__default": {}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0, "host": api_host},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
    caller = request_origin(origin, None)
    allowed = caller is not None and origin_allowed(app.origins, caller)
    headers = cors_headers(origin) if allowed else {}
    # The answer names the Host it was asked for: a shared cache in front must not hand
    # one host's answer (or a forged Host's) to a page that asked another.
    headers["Cache-Control"] = "private, no-store"
    headers["Vary"] = "Host, Origin"
    return JSONResponse(settings, headers=headers)


async def healthz(request: Request) -> Response:
    """Liveness: this process serves requests (`/healthz/live` is the same)."""
    c = _collector(request)
    return JSONResponse({"ok": True, "queue": c.writer.pending, "worker": os.getpid()})


async def healthz_ready(request: Request) -> Response:
    """Readiness, for a load balancer: 200 while this process can take events: its
    database answers now, its write queue has room, and the accepted-but-not-indexed
    backlog is within twice its bound (past the bound each commit indexes as much as
    it adds, so the backlog stays near it; twice means indexing is not keeping up at
    all). Else 503 with Retry-After and the reasons."""
    c = _collector(request)
    body: dict[str, object] = {
        "ready": False,
        "worker": os.getpid(),
        "queue": c.writer.pending,
        "queue_size": c.settings.queue_size,
    }
    reasons: list[str] = []
    try:
        state = await run_in_threadpool(c.store.ready)
    except Exception as exc:  # whatever the driver raised: the database is not usable
        reasons.append(f"database unreachable: {str(exc).splitlines()[0] if str(exc) else exc}")
    else:
        body.update(state)
        bound = state["max_backlog"]
        if bound and state["backlog"] > 2 * bound:
            reasons.append(f"backlog {state['backlog']} is over twice its bound {bound}")
    if c.writer.pending >= c.settings.queue_size:
        reasons.append("the write queue is full")
    if reasons:
        body["reasons"] = reasons
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    body["ready"] = True
    return JSONResponse(body)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the one error shape."""
    assert isinstance(exc, HTTPException)
    err: CollectorError
    if exc.status_code == 404:
        err = NotFound(errors=[field_error("path", f"{request.url.path} is not an endpoint")])
    elif exc.status_code == 405:
        err = MethodNotAllowed(
            errors=[field_error("method", f"{request.method} is not allowed here")]
        )
    else:
        err = CollectorError(str(exc.detail))
        err.status = exc.status_code
    return await _collector_error(request, err)


async def _collector_error(request: Request, exc: Exception) -> Response:
    """The one place a CollectorError raised by a route becomes its answer."""
    assert isinstance(exc, CollectorError)
    return error_response(exc)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Never a traceback to a client: log it here, answer with the one error shape.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return await _collector_error(request, InternalError())


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path. Requests free their objects by
    reference counting, yet every 700 allocations CPython's default thresholds start a
    collection, and every 100th of those walks the whole heap: modules, the User-Agent
    cache, the app cache. Objects alive at start-up are frozen out of collections, and
    young ones are collected every 20,000 allocations (docs/benchmarks.md: single events
    +30%, 50-event batches +10%)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _warm_figures(store: Store, stop: threading.Event) -> None:
    """Read each app's days into the column cache (store/columns.py), so that the first
    dashboard view or funnel after a start does not wait for it: an overview of
    everything before now reads every day (a funnel reads them all too); the cache's
    budget bounds what stays."""
    query = AnalyticsQuery(since=0, until=now_ms())
    try:
        for app in store.list_apps():
            if stop.is_set():
                return
            store.analytics_overview(app.app_id, query)
    except Exception:  # a cache left cold is read on demand; serving goes on
        log.exception("collector: reading the figures' columns at start failed")


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, tune_gc: bool = False
) -> Starlette:
    """The ASGI app. The store's schema is migrated and the writer started in lifespan;
    `tune_gc` (set for served worker processes, not for apps embedded in tests) changes
    the process-wide garbage-collector thresholds there."""
    settings = settings or Settings.from_env()
    store = store or open_store(settings.db, max_backlog=settings.max_backlog)
    collector = Collector(settings, store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.migrate()
        set_cursor_secret(store.secret())
        if settings.demo:
            demo = find_demo_app(store)
            collector.demo_app_id = demo.app_id if demo else None
        await collector.writer.start()
        sharing = (
            asyncio.create_task(share_limits(store, lambda: collector.limiter))
            if store.shares_rate_limits
            else None
        )
        if tune_gc:
            _tune_gc()
        stop_warming = threading.Event()
        warming = asyncio.create_task(asyncio.to_thread(_warm_figures, store, stop_warming))
        try:
            async with flushing(collector.tally):
                yield
        finally:
            stop_warming.set()
            await warming
            await collector.writer.stop()
            if sharing is not None:
                sharing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sharing
            store.close()

    endpoint = IngestEndpoint(collector)
    routes: list[BaseRoute] = [Route(path, endpoint, methods=["POST"]) for path in _INGEST_ROUTES]
    routes += [
        Route(path, preflight, methods=["OPTIONS"]) for path in (*_INGEST_ROUTES, *FLAGS_PATHS)
    ]
    routes += [
        Route("/sdk.js", sdk_js, methods=["GET", "HEAD"]),
        Route("/sdk-debug.js", sdk_debug, methods=["GET", "HEAD"]),
        Route("/telltale.mjs", sdk_module, methods=["GET", "HEAD"]),
        Route("/telltale.tgz", sdk_package, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/healthz/live", healthz, methods=["GET"]),
        Route("/healthz/ready", healthz_ready, methods=["GET"]),
        Route("/v1/projects/{write_key}/settings", segment_settings, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/", demo_page, methods=["GET"]),
        Route("/demo.js", demo_js, methods=["GET"]),
    ]
    routes += posthog_routes()
    routes += query_routes()
    routes += dashboard_routes()
    app = CollectorApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(ObserveMiddleware, observer=collector.observer)],
        exception_handlers={
            CollectorError: _collector_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.ingest = endpoint
    app.state.collector = collector
    return app


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory`: each worker process builds its app from env."""
    return create_app(Settings.from_env(), tune_gc=True)
