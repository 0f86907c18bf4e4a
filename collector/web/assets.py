"""Small files the collector serves from memory: the SDK's builds, its npm package, the
demo's script."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from collector.errors import NotFound


class StaticAsset:
    """A small file served from memory with an ETag and a precompressed gzip copy (unless
    it is compressed already: `compress=False`)."""

    def __init__(self, path: Path, media_type: str, max_age: int, *, compress: bool = True) -> None:
        self.path = path
        self.media_type = media_type
        self.max_age = max_age
        self.compress = compress
        self._loaded: tuple[float, bytes, bytes, str] | None = None

    def _load(self) -> tuple[bytes, bytes, str]:
        mtime = self.path.stat().st_mtime
        if self._loaded is None or self._loaded[0] != mtime:
            raw = self.path.read_bytes()
            etag = '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'
            self._loaded = (mtime, raw, gzip.compress(raw, 9, mtime=0), etag)
        return self._loaded[1], self._loaded[2], self._loaded[3]

    def response(self, request: Request, body: bytes | None = None) -> Response:
        try:
            raw, gz, etag = self._load()
        except FileNotFoundError:
            raise NotFound(f"{self.path.name} is not built (run make sdk)") from None
        headers = {
            "ETag": etag,
            "Cache-Control": f"public, max-age={self.max_age}",
            "Vary": "Accept-Encoding",
            "Access-Control-Allow-Origin": "*",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if self.compress and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(gz, media_type=self.media_type, headers=headers)
        return Response(raw, media_type=self.media_type, headers=headers)
