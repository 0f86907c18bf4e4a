"""Identifiers: time-ordered event ids, app ids and API keys."""

from __future__ import annotations

import hashlib
import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def event_id(now_ms: int | None = None) -> str:
    """`evt_` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "evt_" + _base32(value, 26)


def app_id() -> str:
    return "app_" + secrets.token_hex(8)


def api_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


def key_id() -> str:
    return "key_" + secrets.token_hex(6)


def hash_key(key: str) -> str:
    # Keys carry 192 random bits, so a fast unsalted hash is enough to make a stolen
    # database useless while keeping per-request lookups cheap.
    return hashlib.sha256(key.encode()).hexdigest()
