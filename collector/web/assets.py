"""Small files the collector serves from memory: the SDK's builds, its npm package, the
demo's script."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import brotli
import zopfli.gzip
from starlette.requests import Request
from starlette.responses import Response

from collector.errors import NotFound

# How each compressed copy is made: once per file version, so the best each format gives.
# zopfli writes the gzip format 1-2% smaller than zlib at level 9 (the script tag: 2,496
# bytes against 2,530); brotli, which browsers ask for over HTTPS, smaller still (2,257).
_ZOPFLI_ITERATIONS = 15  # more gained one byte in a thousand iterations on the script tag


def gzip_copy(raw: bytes) -> bytes:
    """The gzip copy the collector serves (also what the SDK's size budget measures)."""
    packed: bytes = zopfli.gzip.compress(raw, numiterations=_ZOPFLI_ITERATIONS)
    return packed


def brotli_copy(raw: bytes) -> bytes:
    packed: bytes = brotli.compress(raw, mode=brotli.MODE_TEXT, quality=11)
    return packed


def _accepts(header: str, coding: str) -> bool:
    """Whether an Accept-Encoding header takes `coding` (q=0 refuses it)."""
    for part in header.lower().split(","):
        name, _, params = part.partition(";")
        if name.strip() == coding:
            params = params.strip()
            if not params.startswith("q="):
                return True
            try:
                return float(params[2:]) > 0
            except ValueError:
                return False
    return False


class _Loaded(NamedTuple):
    mtime: float
    raw: bytes
    gzip: bytes
    brotli: bytes
    etag: str


class StaticAsset:
    """A small file served from memory with an ETag and precompressed brotli and gzip
    copies (unless it is compressed already: `compress=False`)."""

    def __init__(self, path: Path, media_type: str, max_age: int, *, compress: bool = True) -> None:
        self.path = path
        self.media_type = media_type
        self.max_age = max_age
        self.compress = compress
        self._loaded: _Loaded | None = None

    def _load(self) -> _Loaded:
        mtime = self.path.stat().st_mtime
        if self._loaded is None or self._loaded.mtime != mtime:
            raw = self.path.read_bytes()
            etag = hashlib.sha256(raw).hexdigest()[:20]
            packed = (gzip_copy(raw), brotli_copy(raw)) if self.compress else (b"", b"")
            self._loaded = _Loaded(mtime, raw, *packed, etag)
        return self._loaded

    def response(self, request: Request) -> Response:
        try:
            loaded = self._load()
        except FileNotFoundError:
            raise NotFound(f"{self.path.name} is not built (run make sdk)") from None
        accept = request.headers.get("accept-encoding", "") if self.compress else ""
        coding = "br" if _accepts(accept, "br") else "gzip" if _accepts(accept, "gzip") else ""
        # Each representation has its own ETag (RFC 9110, 8.8.3), so that a cache never
        # answers a revalidation with a body in another coding.
        etag = f'"{loaded.etag}{"-" + coding if coding else ""}"'
        headers = {
            "ETag": etag,
            "Cache-Control": f"public, max-age={self.max_age}",
            "Vary": "Accept-Encoding",
            "Access-Control-Allow-Origin": "*",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if coding:
            headers["Content-Encoding"] = coding
        content = {"br": loaded.brotli, "gzip": loaded.gzip, "": loaded.raw}[coding]
        return Response(content, media_type=self.media_type, headers=headers)
