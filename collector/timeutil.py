"""Timestamps: ISO 8601 or epoch milliseconds in, epoch milliseconds out."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

MAX_FUTURE_MS = 23 * 3600 * 1000
_MIN_MS = 0  # 1970-01-01
_MAX_MS = 253402300799999  # 9999-12-31


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_timestamp(value: object) -> int:
    """Epoch ms from an ISO 8601 string or an epoch-ms number; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 string or epoch milliseconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("is out of range")  # inf and nan: Python objects, not JSON's
    if isinstance(value, int | float):
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            ms = int(text)
        else:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("must be an ISO 8601 string or epoch milliseconds") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            ms = int(parsed.timestamp() * 1000)
    else:
        raise ValueError("must be an ISO 8601 string or epoch milliseconds")
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError("is out of range")
    return ms


def iso(ms: int) -> str:
    """`2026-11-22T10:00:00.000Z` for epoch ms."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str) -> int:
    """`20m`, `90d`, `1h`, `30s` → milliseconds (a bare number is seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 20m, 1h, 90d)")
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]
