"""Compressed request bodies (`Content-Encoding: gzip`, as RudderStack's and Segment's
server libraries send by default), inflated in bounded steps so that the size limits hold
for what the body decodes to: a small body that inflates past the limit is a 413 as soon
as the limit is passed, never a large allocation."""

from __future__ import annotations

import zlib

from collector.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType, field_error

# Output is produced at most this many bytes at a time, so memory stays bounded by the
# limit plus one step whatever the compression ratio.
STEP = 64 * 1024

_GZIP = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip header and trailer
_DEFLATE = zlib.MAX_WBITS


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before compression. `encoding` is the Content-Encoding header;
    identity (or none) returns the body unchanged. 413 past `limit` bytes inflated, 400 if
    the body is not what its encoding says, 415 for an encoding we do not read."""
    if not encoding:
        return body
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return body
    if name in ("gzip", "x-gzip"):
        return inflate(body, _GZIP, limit, name)
    if name == "deflate":
        return inflate(body, _DEFLATE, limit, name)
    raise UnsupportedMediaType(
        "Content-Encoding must be gzip, deflate or identity",
        [field_error("content-encoding", f"{name!r} is not supported")],
    )


def inflate(body: bytes, wbits: int, limit: int, name: str = "gzip") -> bytes:
    """Inflate `body`, STEP bytes of output at a time, stopping past `limit`."""
    inflater = zlib.decompressobj(wbits)
    parts: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            part = inflater.decompress(data, STEP)
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(
                    "Request body exceeds 512 KB once decompressed",
                    [field_error("body", f"inflates past {limit} bytes")],
                )
            parts.append(part)
            if inflater.eof:
                # Bytes after the end of the stream: zlib keeps handing them back (in
                # unconsumed_tail once an output step was cut short), so a loop waiting
                # for them to be used up never ends.
                if inflater.unconsumed_tail or inflater.unused_data:
                    raise InvalidRequest(
                        "Request body is not valid " + name,
                        [field_error("body", f"has data after the end of its {name} stream")],
                    )
                break
            tail = inflater.unconsumed_tail
            if not part and len(tail) == len(data):
                break  # no progress: the input is used up (and the stream truncated)
            data = tail
    except zlib.error:
        raise InvalidRequest(
            "Request body is not valid " + name,
            [field_error("body", f"is not valid {name} data")],
        ) from None
    if not inflater.eof:
        raise InvalidRequest(
            "Request body is not valid " + name,
            [field_error("body", f"is truncated {name} data")],
        )
    return b"".join(parts)
