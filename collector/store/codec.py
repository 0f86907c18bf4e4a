"""The inbox row: a group of accepted events, compact, for any backend to store until
it indexes them."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import NamedTuple

import lz4.block
import orjson

from collector.models import Event, Kind


class Accepted(NamedTuple):
    """An accepted event as indexing needs it: its JSON objects stay JSON text, which is
    what both backends store, so indexing neither parses nor re-serialises them."""

    kind: Kind
    id: str
    app_id: str
    name: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    ts: int
    timestamp: str | None
    sent_at: str | None
    received_at: int
    properties: str  # JSON
    context: str  # JSON
    traits: str | None  # JSON, or None when the event carries none
    is_bot: bool


def encode(events: Sequence[Event]) -> bytes:
    """Accepted events as one inbox row, compressed with LZ4 behind a one-byte tag: a
    JSON array with each event's scalar fields and the byte lengths of its properties,
    context and traits, a newline, then those JSON objects back to back. Decoding slices
    them out as text instead of parsing them (an object parsed into a dict costs more
    than its text). A group's events share their keys, context and User-Agent, so LZ4
    shrinks a group of browser events about tenfold in ~2 µs (zlib's fastest level ~25
    times slower): the row fits on a page, so a commit writes and flushes less."""
    header = []
    parts: list[bytes] = []
    for e in events:
        properties = orjson.dumps(e.properties)
        context = orjson.dumps(e.context)
        traits = b"" if e.traits is None else orjson.dumps(e.traits)
        header.append(
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
                e.is_bot,
                len(properties),
                len(context),
                -1 if e.traits is None else len(traits),
            )
        )
        parts += (properties, context, traits)
    # orjson escapes control characters inside strings: the first newline ends the header.
    data = orjson.dumps(header) + b"\n" + b"".join(parts)
    compressed: bytes = lz4.block.compress(data)
    return _SLICED + compressed


_SLICED = b"S"  # LZ4, header and JSON texts (above)
_LZ4 = b"L"  # LZ4 of one JSON array of whole events; a plain JSON row starts with "["
_ZLIB = b"x"  # zlib of that array


def decode(data: bytes) -> list[Accepted]:
    tag = data[:1]
    if tag != _SLICED:
        return _decode_whole(data)
    raw = lz4.block.decompress(data[1:])
    cut = raw.index(b"\n")
    pos = cut + 1
    out: list[Accepted] = []
    # Each header row: Accepted's first eleven fields in order, is_bot, then the byte
    # lengths of properties, context and traits (-1: no traits).
    for row in orjson.loads(raw[:cut]):
        n_properties, n_context, n_traits = row[12], row[13], row[14]
        properties = raw[pos : pos + n_properties].decode()
        pos += n_properties
        context = raw[pos : pos + n_context].decode()
        pos += n_context
        traits = None
        if n_traits >= 0:
            traits = raw[pos : pos + n_traits].decode()
            pos += n_traits
        out.append(Accepted._make((*row[:11], properties, context, traits, row[11])))
    return out


def _decode_whole(data: bytes) -> list[Accepted]:
    """Rows that hold whole events in one JSON array (written by earlier versions, which
    an upgraded collector may find in its inbox)."""
    tag = data[:1]
    if tag == _LZ4:
        data = lz4.block.decompress(data[1:])
    elif tag == _ZLIB:
        data = zlib.decompress(data)

    def text(value: object) -> str:
        return orjson.dumps(value).decode()

    # Each row: Accepted's first eleven fields in order, then properties, context and
    # traits as objects, and is_bot.
    return [
        Accepted._make(
            (
                *row[:11],
                text(row[11]),
                text(row[12]),
                None if row[13] is None else text(row[13]),
                row[14],
            )
        )
        for row in orjson.loads(data)
    ]
