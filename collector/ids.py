"""Identifiers: time-ordered event ids, app ids and API keys."""

from __future__ import annotations

import hashlib
import random
import secrets
import time


def event_id(now_ms: int | None = None) -> str:
    """`evt_` + 32 hex digits: 48 bits of milliseconds then 80 random bits, so ids sort by
    time as text (hex digits are in ASCII order; formatting an int is C-fast)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # Ids need uniqueness, not secrecy: the fast PRNG (reseeded after fork) is enough.
    return f"evt_{(ms << 80) | random.getrandbits(80):032x}"


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
