"""The ingestion endpoint: the hot path of the collector, apart from app.py so that
`make native` compiles it (collector/native.py; mypyc cannot compile app.py). Per-process
state, reading the body, running the pipeline, the group commit and the answer."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from collector.errors import (
    CollectorError,
    FieldError,
    InternalError,
    Unauthorized,
    field_error,
)
from collector.ingest import pipeline
from collector.ingest.auth import key_from_authorization
from collector.ingest.dialects.base import Dialect
from collector.ingest.dialects.routes import ROUTES, Route
from collector.ingest.encoding import decode_content
from collector.ingest.enrich import client_ip, parse_networks
from collector.ingest.metrics import Tally
from collector.ingest.normalize import (
    MAX_REQUEST_BYTES,
    Payload,
    batch_size,
    decode_body,
    parse_payload,
)
from collector.ingest.ratelimit import RateLimiter
from collector.ingest.writer import Writer
from collector.models import Event, Kind, Outcome
from collector.settings import Settings
from collector.store import Store
from collector.timeutil import now_ms
from collector.web.metrics import Observer

log = logging.getLogger("collector")


class Collector:
    """Per-process state shared by the handlers."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.cache = pipeline.AppCache(store)
        self.limiter = RateLimiter(workers=settings.workers, shared=store.shares_rate_limits)
        self.trusted = parse_networks(settings.trusted_proxies)
        self.tally = Tally()
        self.writer = Writer(
            store,
            queue_size=settings.queue_size,
            commit_batch=settings.commit_batch,
            tally=self.tally,
        )
        self.demo_app_id: str | None = None
        self.observer = Observer(self.tally, settings.access_log)


def raw_headers(scope: Scope) -> dict[str, str]:
    """Request headers as one plain dict (ASGI names are lower-case), built in one pass:
    the hot path reads several, and Starlette's Headers decodes on every lookup."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def cors_headers(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


RawHeaders = tuple[tuple[bytes, bytes], ...]
_NO_QUERY = QueryParams()


@lru_cache(maxsize=1024)
def _cors_raw(origin: str | None) -> RawHeaders:
    """cors_headers as ASGI header pairs, made once per origin (an app has a few)."""
    return _raw(cors_headers(origin))


def _raw(headers: dict[str, str]) -> RawHeaders:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


class IngestEndpoint:
    """The ingestion routes as a plain ASGI app: the hot path of the collector, so it
    reads the body and answers with raw ASGI messages instead of Starlette's Request and
    Response objects. `CollectorApp` calls it before Starlette's middleware stack; mounted
    as a route, it answers the same way. An unexpected error is logged and answered with
    a 500 in the one error shape, as `app._server_error` does for every other route."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        route = ROUTES.get(path)
        forced: Kind | None = "identify" if path == "/v1/identify" else None
        try:
            read = await _read_body(receive)
            if read is None:
                return  # the client left (or timed out) before its body was complete
            body, size = read
            status, answer, headers = await _ingest(
                self.collector, scope, body, size, forced, route
            )
        except Exception:
            log.exception("unhandled error on POST %s", path)
            status, headers = InternalError.status, ()
            dialect = route.dialect if route is not None and not route.shared else None
            answer = dialect.error(InternalError()) if dialect else InternalError().body()
        content = orjson.dumps(answer)
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            *headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})
        self.collector.observer.observe(scope, scope["path"], status, started)


async def _read_body(receive: Receive) -> tuple[bytes, int] | None:
    """The request body and its size; past the size cap the rest is read and counted but
    not kept (decode_body answers 413 with the size). None if the client disconnected
    first: a partial body is never processed."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size


async def _ingest(
    c: Collector, scope: Scope, body: bytes, size: int, forced: Kind | None, route: Route | None
) -> tuple[int, dict[str, Any], RawHeaders]:
    """(status, answer, headers) for one ingestion request."""
    headers = raw_headers(scope)
    origin: str | None = None  # the allowed Origin, to echo in CORS headers
    # Another product's API answers in its own words: from the start on its own paths,
    # once the body shows it on a path it shares with ours.
    dialect: Dialect | None = route.dialect if route is not None and not route.shared else None
    data: Any = None
    charged = False  # whether the app's rate limits were charged before parsing
    try:
        encoding = headers.get("content-encoding")
        query = QueryParams(scope["query_string"]) if scope["query_string"] else _NO_QUERY
        # posthog-js gzips its body and says so in the query string only.
        if route is not None and query.get("compression") == "gzip-js":
            encoding = "gzip"
        if encoding is not None and size <= MAX_REQUEST_BYTES:
            body = decode_content(body, encoding, MAX_REQUEST_BYTES)
            size = len(body)
        if route is not None:
            data = route.dialect.decode(body, headers.get("content-type"), query, size)
            if dialect is None and route.dialect.speaks(data):
                dialect = route.dialect
        ip = _peer_ip(c, scope, headers)
        caller: pipeline.Caller | None
        if dialect is not None and route is not None:
            caller = _dialect_caller(c, dialect, headers, data)
            if caller.source == "server":
                pipeline.check_event_budget(c.limiter, caller.app)
            payload = dialect.payload(data, caller.source, route.message_type, len(body))
            origin = caller.origin
        else:
            caller = pipeline.server_caller(c.cache, headers.get("authorization"))
            if caller is not None:
                pipeline.check_event_budget(c.limiter, caller.app)
            if route is None:
                data = decode_body(body, headers.get("content-type"), size)
            count = batch_size(data) if caller is not None else None
            if caller is not None and count is not None:
                # A known caller's events are counted before they are validated: a batch
                # that is refused (for the backlog, or for its app's limits) costs the
                # decoding only, not the 15-20 ms of CPU its 2,000 events take to
                # validate and enrich, which another app's request would wait out.
                c.writer.check_backlog(count)
                pipeline.check_rate(c.limiter, caller.app, ip, count)
                charged = True
            payload = parse_payload(
                data,
                source="server" if caller else "browser",
                forced_kind=forced,
                body_size=len(body),
            )
        if caller is None:
            app_id = payload.app_id or query.get("app_id")
            caller = pipeline.browser_caller(
                c.cache, app_id, headers.get("origin"), headers.get("referer")
            )
            origin = caller.origin
        if not charged:
            pipeline.check_rate(c.limiter, caller.app, ip, len(payload.items))
        events, errors, warnings = await _build_events(c, payload, caller, ip, headers)
        if errors:
            c.tally.event("invalid", len(errors))
        if dialect is not None:
            # What the pipeline found (an identify without its user...) in the words
            # of the body the client wrote.
            errors = {i: dialect.rename(e) for i, e in errors.items()}
            warnings = {i: dialect.rename(w) for i, w in warnings.items()}
        outcomes = await _store(c, caller.app.setting("bot_policy"), events)
        if payload.is_batch:
            path = dialect.batch_path(data) if dialect is not None else "events"
            status, answer = pipeline.batch_answer(outcomes, errors, warnings, path)
        else:
            status, answer = pipeline.single_answer(
                forced or (events[0].kind if events[0] else "track"),
                outcomes.get(0),
                errors.get(0),
                warnings.get(0),
            )
    except CollectorError as exc:
        cors = cors_headers(origin)
        if cors and "Retry-After" in exc.headers:  # let the SDK read when to retry
            cors["Access-Control-Expose-Headers"] = "Retry-After"
        answer = dialect.error(exc) if dialect is not None else exc.body()
        return exc.status, answer, _raw({**exc.headers, **cors})
    if not payload.is_batch and events[0] is not None and events[0].kind == "identify":
        answer["user_id"] = events[0].user_id
    if dialect is not None:
        # Their libraries count only 200 as delivered (RudderStack's and PostHog's retry
        # anything else).
        return 200, dialect.answer(answer), _cors_raw(origin)
    return status, answer, _cors_raw(origin)


def _peer_ip(c: Collector, scope: Scope, headers: dict[str, str]) -> str | None:
    client = scope.get("client")
    return client_ip(client[0] if client else None, headers.get("x-forwarded-for"), c.trusted)


# A big batch is enriched this many events at a time, the event loop serving other
# requests in between: a 2,000-event batch takes ~10 ms of CPU, which another app's
# single event would otherwise wait out whole (longer on a busy machine).
BUILD_SLICE = 250


async def _build_events(
    c: Collector,
    payload: Payload,
    caller: pipeline.Caller,
    ip: str | None,
    headers: dict[str, str],
) -> tuple[list[Event | None], dict[int, list[FieldError]], dict[int, list[FieldError]]]:
    received_at = now_ms()
    ua = headers.get("user-agent")
    count = len(payload.items)
    if count <= BUILD_SLICE:
        return pipeline.build_events(
            payload,
            caller,
            store=c.store,
            peer_ip=ip,
            header_ua=ua,
            headers=headers,
            received_at=received_at,
        )
    events: list[Event | None] = []
    errors: dict[int, list[FieldError]] = {}
    warnings: dict[int, list[FieldError]] = {}
    known_users: set[str] = set()
    for start in range(0, count, BUILD_SLICE):
        await asyncio.sleep(0)  # a turn for the requests that arrived meanwhile
        part, part_errors, part_warnings = pipeline.build_events(
            payload,
            caller,
            store=c.store,
            peer_ip=ip,
            header_ua=ua,
            headers=headers,
            received_at=received_at,
            start=start,
            stop=start + BUILD_SLICE,
            known_users=known_users,
        )
        events += part
        errors.update(part_errors)
        warnings.update(part_warnings)
    return events, errors, warnings


def _dialect_caller(
    c: Collector, dialect: Dialect, headers: dict[str, str], data: Any
) -> pipeline.Caller:
    """Who sent a request in another product's dialect: the write key in Basic auth, else
    in the body."""
    authorization = headers.get("authorization")
    if authorization is not None:
        key = key_from_authorization(authorization)
        if key is None:
            raise Unauthorized(
                errors=[field_error("authorization", "use Basic auth with the write key")]
            )
    else:
        key = dialect.write_key(data)
    return pipeline.write_key_caller(c.cache, key, headers.get("origin"), headers.get("referer"))


async def _store(c: Collector, bot_policy: str, events: list[Event | None]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    to_write: list[Event] = []
    indexes: list[int] = []
    for index, ev in enumerate(events):
        if ev is None:
            continue
        if ev.is_bot:
            c.tally.bot(ev.bot_reason or "unknown")
            if bot_policy == "drop":
                c.tally.event("discarded")
                outcomes[index] = Outcome("discarded", reason=f"bot: {ev.bot_reason}")
                continue
        to_write.append(ev)
        indexes.append(index)
    if to_write:
        for index, outcome in zip(indexes, await c.writer.submit(to_write), strict=True):
            outcomes[index] = outcome
    return outcomes
