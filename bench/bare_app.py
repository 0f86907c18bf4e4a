"""The baseline: a bare Starlette endpoint that only parses the same JSON and answers,
served as the collector is (bench/serve.py) and with the garbage collector tuned as in the
collector's workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The collector's own tuning (gc.collect(); gc.freeze(); gc.set_threshold(20_000, 20, 20)),
# which its served workers run at start-up (collector/web/app.py, `app_from_env`).
from collector.web.app import _tune_gc


async def event(request: Request) -> Response:
    data = orjson.loads(await request.body())
    return Response(
        orjson.dumps({"success": True, "n": len(data)}), 202, media_type="application/json"
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    _tune_gc()  # at start-up, as the collector's lifespan does
    yield


app = Starlette(
    routes=[
        Route("/v1/event", event, methods=["POST"]),
        Route("/v1/events", event, methods=["POST"]),
    ],
    lifespan=lifespan,
)
