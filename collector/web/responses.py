"""Response helpers shared by the ingestion and query handlers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from collector.errors import CollectorError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: CollectorError) -> Response:
    """The one error shape, with the error's status and headers."""
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
