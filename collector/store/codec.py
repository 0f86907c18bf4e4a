"""The inbox row: a group of accepted events, compact, for any backend to store until
it indexes them."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import lz4.block
import orjson

from collector.models import Event


def encode(events: Sequence[Event]) -> bytes:
    """Accepted events as one inbox row: a JSON array of arrays (see decode), compressed
    with LZ4 behind a one-byte tag. A group's events share their keys, context and
    User-Agent, so a group of 16 browser events shrinks from 8.6 KB to 0.9 KB in ~2 µs
    (zlib's fastest level: 0.7 KB in ~50 µs). The row then fits on one page, so the commit
    writes one inbox page to the WAL instead of three, and the fsync flushes less."""
    data = orjson.dumps(
        [
            (
                e.kind,
                e.id,
                e.app_id,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.message_id,
                e.ts,
                e.timestamp,
                e.sent_at,
                e.received_at,
                e.properties,
                e.context,
                e.traits,
                e.is_bot,
            )
            for e in events
        ]
    )
    compressed: bytes = lz4.block.compress(data)
    return _LZ4 + compressed


_LZ4 = b"L"  # tags an LZ4 row; a plain JSON row starts with "[", a zlib one with "x"


def decode(data: bytes) -> list[Event]:
    tag = data[:1]
    if tag == _LZ4:
        data = lz4.block.decompress(data[1:])
    elif tag == b"x":  # zlib: rows written by older versions still decode
        data = zlib.decompress(data)
    # else plain JSON, written before compression
    return [
        Event(
            kind=kind,
            name=name,
            app_id=app_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            message_id=message_id,
            ts=ts,
            received_at=received_at,
            timestamp=timestamp,
            sent_at=sent_at,
            properties=properties,
            context=context,
            traits=traits,
            id=eid,
            is_bot=is_bot,
        )
        for (
            kind,
            eid,
            app_id,
            name,
            user_id,
            anonymous_id,
            message_id,
            ts,
            timestamp,
            sent_at,
            received_at,
            properties,
            context,
            traits,
            is_bot,
        ) in orjson.loads(data)
    ]
