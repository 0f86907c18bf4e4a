"""The query API (server keys only): segments, funnels, user profiles, event pages and
daily stats. Handlers only wire steps: authenticate → parse → query the store (in a
worker thread: a query may take a while and must not stall ingestion) → answer.

A key reads its own app and nothing else: every store call is given the key's app id."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from collector import ids
from collector.errors import (
    FieldError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    field_error,
)
from collector.ingest import pipeline
from collector.ingest.auth import key_from_authorization
from collector.models import App
from collector.query.analytics import ANALYTICS_PARAMS, parse_analytics_query, parse_dimension
from collector.query.funnels import parse_funnel_query, run_funnel
from collector.query.segments import (
    MAX_INT,
    MAX_TIME_MS,
    decode_cursor,
    encode_cursor,
    fingerprint,
    next_cursor,
    parse_event_name,
    parse_limit,
    parse_segment_query,
    parse_time,
)
from collector.query.types import EventsQuery, StatsQuery
from collector.timeutil import iso, now_ms
from collector.web.responses import JSONResponse

if TYPE_CHECKING:
    from collector.store import Store
    from collector.web.ingest import Collector

MAX_QUERY_BODY = 64 * 1024
MAX_EVENT_FILTERS = 100


# Queries run on their own two threads: off the event loop (a funnel may take most of a
# second), at most two at once on a small machine so ingestion keeps a core, and two
# SQLite connections (each with its page cache) instead of one per thread of Starlette's
# pool of 40.
_QUERY_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="collector-query")

T = TypeVar("T")


async def _run(func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_QUERY_THREADS, func, *args)


# The dashboard's pages query on the same threads.
run_query = _run


def _collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


def _app(request: Request, accepts: Collection[str] = ()) -> App:
    """The app of the server key; the query API has no browser (origin) access. A query
    parameter the handler does not read (`accepts`) is refused here, for every handler:
    a misspelt filter (`?contry=US`, `?users=u_1`) would otherwise answer for everything,
    with nothing to say the figures are not what was asked. So is a NUL in a query or
    path parameter: no database stores or compares one as text (PostgreSQL refuses it
    outright)."""
    caller = pipeline.server_caller(_collector(request).cache, request.headers.get("authorization"))
    if caller is None:
        raise Unauthorized(
            errors=[field_error("authorization", "is required: Bearer KEY with a server key")]
        )
    unknown = sorted({name for name in request.query_params if name not in accepts})
    if unknown:
        expected = ", ".join(accepts) if accepts else "none"
        raise InvalidRequest(
            errors=[
                field_error(n, f"is not a parameter of this request (it takes: {expected})")
                for n in unknown
            ]
        )
    nul = nul_parameters(request)
    if nul:
        raise InvalidRequest(
            errors=[field_error(n, "must not contain NUL characters") for n in nul]
        )
    return caller.app


def nul_parameters(request: Request) -> list[str]:
    """The query and path parameters whose value holds a NUL, by name (the query API and
    the dashboard refuse them)."""
    params = [*request.query_params.multi_items(), *request.path_params.items()]
    return sorted({name for name, value in params if "\x00" in str(value)})


async def read_capped(request: Request, limit: int, too_large: Exception) -> bytes:
    """The body, read chunk by chunk; `too_large` is raised as soon as it passes `limit`
    (at once when Content-Length says it will): a client announcing or sending gigabytes
    costs no more memory than the cap."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> Any:
    """The JSON body, refused past MAX_QUERY_BODY."""
    too_large = PayloadTooLarge(
        errors=[field_error("body", f"is over {MAX_QUERY_BODY // 1024} KB")]
    )
    body = await read_capped(request, MAX_QUERY_BODY, too_large)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "The body is not valid JSON", [field_error("body", "must be a JSON object")]
        ) from None


_EVENTS_PARAMS = (
    "event",
    "user",
    "anonymous_id",
    "since",
    "until",
    "include_bots",
    "order",
    "limit",
    "cursor",
)


def _event_names(names: list[str], errors: list[FieldError]) -> tuple[str, ...]:
    if len(names) > MAX_EVENT_FILTERS:
        errors.append(field_error("event", f"give at most {MAX_EVENT_FILTERS} event names"))
        return ()
    return tuple(parse_event_name(name, "event", errors) for name in names)


def _bool_param(value: str | None, name: str, errors: list[FieldError]) -> bool:
    if value is None or value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    errors.append(field_error(name, "must be true or false"))
    return False


async def segments_query(request: Request) -> Response:
    app = _app(request)
    query = parse_segment_query(await _json_body(request), now_ms())
    store = _collector(request).store
    page = await _run(store.segment, app.app_id, query)
    return JSONResponse(
        {
            "count": page.count,
            "users": page.users,
            "next": next_cursor(query, page.last),
            "as_of": iso(query.as_of),
        }
    )


async def funnels(request: Request) -> Response:
    app = _app(request)
    query = parse_funnel_query(await _json_body(request))
    store = _collector(request).store
    answer = await _run(run_funnel, store, app.app_id, query)
    return JSONResponse(answer)


async def user_profile(request: Request) -> Response:
    app = _app(request, ("include_bots",))
    errors: list[FieldError] = []
    include_bots = _bool_param(request.query_params.get("include_bots"), "include_bots", errors)
    if errors:
        raise InvalidRequest(errors=errors)
    user_id = request.path_params["user_id"]
    store = _collector(request).store
    profile = await _run(store.user_profile, app.app_id, user_id, include_bots)
    if profile is None:
        raise NotFound("Unknown user", [field_error("id", "is not a user of this app")])
    return JSONResponse(profile)


async def list_events(request: Request) -> Response:
    app = _app(request, _EVENTS_PARAMS)
    params = request.query_params
    errors: list[FieldError] = []
    events = _event_names(params.getlist("event"), errors)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        errors.append(field_error("order", 'must be "asc" or "desc"'))
    query = EventsQuery(
        user=params.get("user") or None,
        anonymous_id=params.get("anonymous_id") or None,
        events=events,
        since=parse_time(params.get("since"), "since", errors),
        until=parse_time(params.get("until"), "until", errors),
        include_bots=_bool_param(params.get("include_bots"), "include_bots", errors),
        order=order,
        limit=parse_limit(params.get("limit"), "limit", errors),
    )
    # The cursor is bound to the filters: a cursor of another listing is refused.
    fp = fingerprint(
        "events",
        query.user,
        query.anonymous_id,
        query.events,
        query.since,
        query.until,
        query.include_bots,
        query.order,
    )
    if params.get("cursor"):
        cursor = decode_cursor(params["cursor"], fp, errors)
        match cursor.get("at"):
            case [int(ts), int(rowid)] if 0 <= ts <= MAX_TIME_MS and 0 <= rowid <= MAX_INT:
                query = dataclasses.replace(query, after=(ts, rowid))
            case _ if cursor:
                errors.append(field_error("cursor", "is not a valid cursor"))
    if errors:
        raise InvalidRequest("Invalid events query", errors)
    store = _collector(request).store
    page = await _run(store.events_page, app.app_id, query)
    cursor_out = encode_cursor({"at": list(page.last), "q": fp}) if page.last else None
    return JSONResponse({"events": page.events, "next": cursor_out})


async def stats(request: Request) -> Response:
    app = _app(request, ("event", "since", "until", "include_bots"))
    params = request.query_params
    errors: list[FieldError] = []
    query = StatsQuery(
        events=_event_names(params.getlist("event"), errors),
        since=parse_time(params.get("since"), "since", errors),
        until=parse_time(params.get("until"), "until", errors),
        include_bots=_bool_param(params.get("include_bots"), "include_bots", errors),
    )
    if errors:
        raise InvalidRequest("Invalid stats query", errors)
    store = _collector(request).store
    answer = await _run(store.event_stats, app.app_id, query)
    return JSONResponse(answer)


async def analytics_overview(request: Request) -> Response:
    app = _app(request, ANALYTICS_PARAMS)
    errors: list[FieldError] = []
    query = parse_analytics_query(request.query_params, now_ms(), errors)
    if errors:
        raise InvalidRequest("Invalid analytics query", errors)
    store = _collector(request).store
    return JSONResponse(await _run(store.analytics_overview, app.app_id, query))


async def analytics_breakdown(request: Request) -> Response:
    app = _app(request, ("by", *ANALYTICS_PARAMS))
    errors: list[FieldError] = []
    by = parse_dimension(request.query_params.get("by"), errors)
    # A breakdown draws no series: its range is not bounded by the series' points.
    query = parse_analytics_query(request.query_params, now_ms(), errors, series=False)
    if errors:
        raise InvalidRequest("Invalid analytics query", errors)
    store = _collector(request).store
    return JSONResponse(await _run(store.analytics_breakdown, app.app_id, query, by))


STREAM_POLL_S = 0.25
STREAM_HEARTBEAT_S = 15.0
STREAM_BATCH = 500
# How often a long-lived answer checks that the credential that opened it still holds.
RECHECK_S = 0.5

StillValid = Callable[[], Awaitable[bool]]


def key_check(request: Request, app: App) -> StillValid:
    """Whether the request's API key still opens `app`, asked of the store itself (not the
    per-process cache): a key revoked by the CLI, another worker or another host is seen
    at the next check."""
    key = key_from_authorization(request.headers.get("authorization")) or ""
    key_hash = ids.hash_key(key)
    store = _collector(request).store

    async def still_valid() -> bool:
        current = await _run(store.app_for_key, key_hash)
        return current is not None and current.app_id == app.app_id

    return still_valid


class CredentialGuard:
    """Ends a long-lived answer once the credential that opened it no longer holds.

    A stream that only checked its key when it opened would outlive a revocation for as
    long as the client keeps it open. Its loop asks `revoked()` on every turn; the store
    is asked at most every `every` seconds, so a revocation made by the CLI, another
    worker or another host ends the stream within `every` plus one turn of the loop.
    Anything that streams under a credential (the live stream's API key; dashboard
    sessions, whose admin may be deleted or change password) takes a guard with its own
    `still_valid` check."""

    def __init__(self, still_valid: StillValid, every: float = RECHECK_S) -> None:
        self.still_valid = still_valid
        self.every = every
        self._next = 0.0

    async def revoked(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every
        return not await self.still_valid()


REVOKED_MESSAGE = b'event: revoked\ndata: {"message": "credentials revoked"}\n\n'


async def stream(request: Request) -> Response:
    """`GET /v1/stream`: Server-Sent Events, one `event` message per stored event, as it
    is committed by any worker process. Resumes after `Last-Event-ID` (or `?after=`),
    else starts now. `?event=` (repeatable) and `?include_bots=` filter as for
    `/v1/events`; a comment line every 15 s keeps proxies from closing the connection.
    Once its key is revoked, a last `revoked` event and the stream ends (CredentialGuard)."""
    app = _app(request, ("event", "include_bots", "after"))
    params = request.query_params
    errors: list[FieldError] = []
    events = _event_names(params.getlist("event"), errors)
    include_bots = _bool_param(params.get("include_bots"), "include_bots", errors)
    resume = request.headers.get("last-event-id") or params.get("after")
    after: int | None = None
    if resume is not None:
        if resume.isdigit() and int(resume) <= MAX_INT:
            after = int(resume)
        else:
            errors.append(field_error("after", "must be an event position (Last-Event-ID)"))
    if errors:
        raise InvalidRequest("Invalid stream request", errors)
    store = _collector(request).store
    if after is None:
        after = await _run(store.stream_position)

    guard = CredentialGuard(key_check(request, app))
    return event_stream(store, app.app_id, after, events, include_bots, guard)


def event_stream(
    store: Store,
    app_id: str,
    after: int,
    events: tuple[str, ...],
    include_bots: bool,
    guard: CredentialGuard,
) -> Response:
    """The live stream's answer, after position `after`, for as long as `guard` holds
    (the query API's key; the dashboard's session)."""

    async def messages() -> AsyncIterator[bytes]:
        position = after
        quiet_since = time.monotonic()
        yield b": telltale stream\n\n"
        while True:
            if await guard.revoked():
                yield REVOKED_MESSAGE
                return
            rows = await _run(
                store.stream_events, app_id, position, events, include_bots, STREAM_BATCH
            )
            for rowid, event in rows:
                position = rowid
                yield b"id: %d\nevent: event\ndata: %s\n\n" % (rowid, orjson.dumps(event))
            if rows:
                quiet_since = time.monotonic()
                if len(rows) == STREAM_BATCH:
                    continue  # more are waiting
            elif time.monotonic() - quiet_since >= STREAM_HEARTBEAT_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await store.wait_for_events(STREAM_POLL_S)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def routes() -> list[Route]:
    """The query API's routes, mounted by app.create_app. `GET /v1/events` shares its
    path with the ingestion POST: Starlette picks the route by method."""
    return [
        Route("/v1/segments/query", segments_query, methods=["POST"]),
        Route("/v1/funnels", funnels, methods=["POST"]),
        Route("/v1/users/{user_id:path}", user_profile, methods=["GET"]),
        Route("/v1/events", list_events, methods=["GET"]),
        Route("/v1/stats", stats, methods=["GET"]),
        Route("/v1/analytics/overview", analytics_overview, methods=["GET"]),
        Route("/v1/analytics/breakdown", analytics_breakdown, methods=["GET"]),
        Route("/v1/stream", stream, methods=["GET"]),
    ]
