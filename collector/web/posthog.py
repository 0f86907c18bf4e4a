"""What posthog-js asks besides capture: its remote config (`GET /array/<token>/config`,
or `config.js` with site apps on) and its feature flags (`POST /flags/`, the older
`POST /decide/`). A collector has neither flags nor remote settings: the answers say so
(ingest/dialects/posthog.py's `remote_config` and `flags_answer`), so that the library
sends its events in a compression read here and loads nothing more.

The project key is what capture takes: an app id, from one of the app's allowed origins
(its CORS headers go only there), or an API key from a server, whose flags call is
answered too."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.errors import CollectorError, NotFound, field_error
from collector.ingest import pipeline
from collector.ingest.auth import origin_allowed, request_origin
from collector.ingest.dialects.posthog import PostHog, flags_answer, remote_config
from collector.ingest.dialects.routes import POSTHOG
from collector.ingest.encoding import decode_content
from collector.ingest.normalize import MAX_REQUEST_BYTES
from collector.web.ingest import Collector, cors_headers
from collector.web.responses import JSONResponse

FLAGS_PATHS = ("/flags", "/flags/", "/decide", "/decide/")


def _collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


def _app_origin(request: Request, token: str) -> dict[str, str]:
    """CORS headers for the app named by `token` (an app id) when the page's origin is
    one it allows; 404 for a token that names no app."""
    app = _collector(request).cache.by_id(token)
    if app is None:
        raise NotFound("Unknown project", [field_error("token", "is not a known app id")])
    origin = request.headers.get("origin")
    caller = request_origin(origin, None)
    allowed = caller is not None and origin_allowed(app.origins, caller)
    return cors_headers(origin) if allowed else {}


async def config(request: Request) -> Response:
    token = request.path_params["token"]
    return JSONResponse(remote_config(token), headers=_app_origin(request, token))


async def config_js(request: Request) -> Response:
    # The script version, loaded by a script tag (no CORS): it leaves the config where
    # posthog-js looks for one that came with its bundle. The token is a known app id.
    token = request.path_params["token"]
    _app_origin(request, token)
    key = orjson.dumps(token).decode()
    body = orjson.dumps({"config": remote_config(token), "siteApps": []}).decode()
    script = (
        "(window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {})"
        f"[{key}] = {body};\n"
    )
    return Response(script, media_type="application/javascript")


async def _read_body(request: Request) -> tuple[bytes, int]:
    """The body and its size; past the size cap the rest is counted, not kept."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), size


async def flags(request: Request) -> Response:
    dialect: PostHog = POSTHOG
    origin: str | None = None
    try:
        body, size = await _read_body(request)
        encoding = request.headers.get("content-encoding")
        if request.query_params.get("compression") == "gzip-js":
            encoding = "gzip"
        if encoding is not None and size <= MAX_REQUEST_BYTES:
            body = decode_content(body, encoding, MAX_REQUEST_BYTES)
            size = len(body)
        data = dialect.decode(body, request.headers.get("content-type"), request.query_params, size)
        caller = pipeline.write_key_caller(
            _collector(request).cache,
            dialect.write_key(data),
            request.headers.get("origin"),
            request.headers.get("referer"),
        )
        origin = caller.origin
    except CollectorError as exc:
        return JSONResponse(
            dialect.error(exc),
            status_code=exc.status,
            headers={**exc.headers, **cors_headers(origin)},
        )
    return JSONResponse(flags_answer(caller.app.app_id), headers=cors_headers(origin))


def routes() -> list[Route]:
    """PostHog's config and flags routes, mounted by app.create_app (their CORS preflights
    are app.py's, with the ingestion paths')."""
    return [
        Route("/array/{token}/config", config, methods=["GET"]),
        Route("/array/{token}/config.js", config_js, methods=["GET"]),
        *(Route(path, flags, methods=["POST"]) for path in FLAGS_PATHS),
    ]
