"""The paths each dialect answers: the one table to extend with the next dialect.

A path shared with our own API (`/v1/track`, `/v1/identify`) is answered in the dialect
only when the body speaks it (`Dialect.speaks`); otherwise it is ours, as before."""

from __future__ import annotations

from typing import NamedTuple

from collector.ingest.dialects.base import Dialect
from collector.ingest.dialects.posthog import PostHog
from collector.ingest.dialects.segment import SHORT_TYPES, TYPES, Segment


class Route(NamedTuple):
    dialect: Dialect
    message_type: str | None  # the path's message type; None: a batch of typed messages
    shared: bool = False  # a path of our own API too


SEGMENT = Segment()
POSTHOG = PostHog()

ROUTES: dict[str, Route] = {
    # Segment's HTTP Tracking API (and RudderStack's, which is the same).
    "/v1/batch": Route(SEGMENT, None),
    "/v1/import": Route(SEGMENT, None),
    **{f"/v1/{t}": Route(SEGMENT, t, shared=t in ("track", "identify")) for t in TYPES},
    # analytics.js: /v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a, and /v1/b when batching.
    "/v1/b": Route(SEGMENT, None),
    **{f"/v1/{letter}": Route(SEGMENT, t) for letter, t in SHORT_TYPES.items()},
    # PostHog's capture API, with and without the trailing slash its clients add.
    **{
        path: Route(POSTHOG, None)
        for base in ("/batch", "/capture", "/e", "/i/v0/e", "/track", "/engage")
        for path in (base, base + "/")
    },
}
