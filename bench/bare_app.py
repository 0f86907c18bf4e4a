"""The baseline: a bare Starlette endpoint that only parses the same JSON and answers."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def event(request: Request) -> Response:
    data = orjson.loads(await request.body())
    return Response(
        orjson.dumps({"success": True, "n": len(data)}), 202, media_type="application/json"
    )


app = Starlette(
    routes=[
        Route("/v1/event", event, methods=["POST"]),
        Route("/v1/events", event, methods=["POST"]),
    ]
)
