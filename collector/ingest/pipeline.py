"""Ingestion, step by step: parse → authenticate → limit → enrich → (rules, store).

Each step is a function of plain data; the Starlette handler in app.py only wires them.
Rules and idempotency run inside the writer's transaction (store/sqlite.py) so they hold
across worker processes."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from collector import ids
from collector.errors import (
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    field_error,
)
from collector.ingest.auth import (
    canonical_origin,
    key_from_authorization,
    origin_allowed,
    request_origin,
)
from collector.ingest.enrich import enrich_context
from collector.ingest.normalize import EVENT_TOO_LARGE, Item, Payload
from collector.ingest.ratelimit import KEY_SEP, RateLimiter
from collector.ingest.sources import own_hosts
from collector.models import App, Event, Outcome, Source
from collector.store.base import Store
from collector.timeutil import MAX_FUTURE_MS, iso

UNKNOWN_USER = "is not a known user of this app"
APP_ID_PREFIX = "app_"  # ids.app_id(): what tells a browser write key from an API key

CACHE_TTL = 2.0  # seconds: how long a revoked key or an edited app may still be served
# Entries of each AppCache map. Keys are app ids (at most MAX_APP_ID characters, checked
# before any lookup) and key hashes (64 hex digits), so entries bound the bytes too.
CACHE_ENTRIES = 10_000
MAX_APP_ID = 64
MAX_KEY = 256  # longer than any key we issue (`sk_` + 32 characters)
# What ids.app_id() makes, with room for ids of other forms an operator may have imported.
_APP_ID = re.compile(r"app_[A-Za-z0-9_-]{1,60}")


def is_app_id(text: str) -> bool:
    """Whether `text` could be an app id: anything else is refused before any lookup, so an
    anonymous client cannot fill a cache (or the store's page cache) with its inventions."""
    return len(text) <= MAX_APP_ID and _APP_ID.fullmatch(text) is not None


class AppCache:
    """Apps by id and by key hash, re-read from the store every couple of seconds so
    edits made by the CLI (another process) take effect quickly without a lookup per
    request. Each map holds at most CACHE_ENTRIES, oldest first out: misses are cached
    too (a client repeating an unknown id costs no lookup), so the bound matters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_id: dict[str, tuple[float, App | None]] = {}
        self._by_key: dict[str, tuple[float, App | None]] = {}

    def by_id(self, app_id: str) -> App | None:
        if not is_app_id(app_id):
            return None
        hit = self._by_id.get(app_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CACHE_TTL:
            return hit[1]
        app = self.store.get_app(app_id)
        _remember(self._by_id, app_id, (now, app))
        return app

    def by_key(self, key: str) -> App | None:
        if len(key) > MAX_KEY:
            return None
        key_hash = ids.hash_key(key)
        hit = self._by_key.get(key_hash)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CACHE_TTL:
            return hit[1]
        app = self.store.app_for_key(key_hash)
        _remember(self._by_key, key_hash, (now, app))
        return app

    def __len__(self) -> int:
        return len(self._by_id) + len(self._by_key)

    def all_origins(self) -> list[str]:
        return [o for app in self.store.list_apps() for o in app.origins]


def _remember(
    cache: dict[str, tuple[float, App | None]], key: str, value: tuple[float, App | None]
) -> None:
    cache.pop(key, None)  # re-inserted last: dicts keep insertion order
    cache[key] = value
    while len(cache) > CACHE_ENTRIES:
        del cache[next(iter(cache))]


class Caller(NamedTuple):
    """Who sent a request (one per request: a named tuple builds ~3x faster than a frozen
    dataclass)."""

    app: App
    source: Source
    origin: str | None  # the allowed Origin to echo in CORS headers


def server_caller(cache: AppCache, authorization: str | None) -> Caller | None:
    """A server caller when an Authorization header is present (401 if it is bad)."""
    if authorization is None:
        return None
    key = key_from_authorization(authorization)
    if key is None:
        raise Unauthorized(
            errors=[field_error("authorization", "use Bearer KEY, Token KEY or Basic auth")]
        )
    app = cache.by_key(key)
    if app is None:
        raise Unauthorized(errors=[field_error("authorization", "unknown or revoked API key")])
    return Caller(app, "server", None)


def browser_caller(
    cache: AppCache, app_id: str | None, origin: str | None, referer: str | None
) -> Caller:
    if not app_id:
        raise Unauthorized(
            "Missing credentials",
            [field_error("app_id", "is required (or an Authorization header with an API key)")],
        )
    if not is_app_id(app_id):
        raise Forbidden("Unknown app", [field_error("app_id", "is not an app id (app_…)")])
    app = cache.by_id(app_id)
    if app is None:
        raise Forbidden("Unknown app", [field_error("app_id", "is not a known app")])
    caller_origin = request_origin(origin, referer)
    if caller_origin is None:
        raise Forbidden(errors=[field_error("origin", "is required (Origin or Referer header)")])
    if not origin_allowed(app.origins, caller_origin):
        raise Forbidden(errors=[field_error("origin", "is not an allowed origin for this app")])
    # Echoed in CORS headers only when the Origin header named it (a Referer is no CORS).
    return Caller(app, "browser", canonical_origin(caller_origin) if origin else None)


def write_key_caller(
    cache: AppCache, key: str | None, origin: str | None, referer: str | None
) -> Caller:
    """The caller of another product's library, by its write key (Segment, RudderStack)
    or project key (PostHog): an app's API key speaks for a server; an app id is what a
    browser library carries, accepted only from one of the app's allowed origins."""
    if key is not None and key.startswith(APP_ID_PREFIX):
        return browser_caller(cache, key, origin, referer)
    if not key:
        raise Unauthorized(
            "Missing credentials",
            [field_error("writeKey", "is required: an API key, or the app id from a browser")],
        )
    app = cache.by_key(key)
    if app is None:
        raise Unauthorized(errors=[field_error("writeKey", "unknown or revoked API key")])
    return Caller(app, "server", None)


def limited_as(ip: str) -> str:
    """The client an address is limited as: an IPv4 address itself, an IPv6 address's
    /64, which one host or one home often holds whole (so one machine cannot pass as
    2^64 clients)."""
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.IPv6Network((ip, 64), strict=False).network_address) + "/64"
    except ValueError:
        return ip


def check_rate(limiter: RateLimiter, app: App, ip: str | None, events: int = 1) -> None:
    """429 past the app's request rate, its (app, IP) request rate, or its event rate: a
    request is charged once, and `events` times in events, so a flood of big batches is
    held to the event limit."""
    wait = limiter.check(("app", app.app_id), float(app.setting("rate_limit_app")))
    if not wait and ip:
        key = ("ip", app.app_id, limited_as(ip))
        wait = limiter.check(key, float(app.setting("rate_limit_ip")))
    if not wait:
        rate = float(app.setting("rate_limit_events"))
        wait = limiter.check(("events", app.app_id), rate, float(max(1, events)))
    if wait:
        raise RateLimited(wait)


def check_event_budget(limiter: RateLimiter, app: App) -> None:
    """429 at once when the app has no event left to spend: a known caller's flood is
    refused before its body is decoded and validated, which is most of its cost."""
    wait = limiter.exhausted(("events", app.app_id), float(app.setting("rate_limit_events")))
    if wait:
        raise RateLimited(wait)


# The kinds of check_rate's buckets: in each key, the part after the kind is the app id.
_APP_BUCKETS = frozenset({"app", "ip", "events"})


def bucket_names_app(app_id: str) -> Callable[[str], bool]:
    """Whether a shared rate bucket's key (its parts joined by KEY_SEP) is one of
    check_rate's for `app_id`: what deleting the app deletes (Store.delete_app)."""

    def names(key: str) -> bool:
        parts = key.split(KEY_SEP)
        return len(parts) >= 2 and parts[0] in _APP_BUCKETS and parts[1] == app_id

    return names


def build_events(
    payload: Payload,
    caller: Caller,
    *,
    store: Store,
    peer_ip: str | None,
    header_ua: str | None,
    headers: Mapping[str, str],
    received_at: int,
    start: int = 0,
    stop: int | None = None,
    known_users: set[str] | None = None,
) -> tuple[list[Event | None], dict[int, list[FieldError]], dict[int, list[FieldError]]]:
    """Enriched events (None where an item is invalid), errors and warnings by index, for
    the payload's items from `start` to `stop` (a big batch is built a slice at a time,
    the users it identified so far carried in `known_users`)."""
    app = caller.app
    errors: dict[int, list[FieldError]] = {}
    warnings: dict[int, list[FieldError]] = {}
    events: list[Event | None] = []
    if known_users is None:
        known_users = set()
    require_known = bool(app.setting("require_known_user"))
    ip_mode = app.setting("ip_mode")
    site_hosts = own_hosts(tuple(app.origins))
    rules_by_event: dict[str, list[Any]] = {}
    for rule in app.rules:
        rules_by_event.setdefault(rule.event, []).append(rule)

    items = payload.items if start == 0 and stop is None else payload.items[start:stop]
    for index, item in enumerate(items, start):
        if not isinstance(item, Item):
            errors[index] = item
            events.append(None)
            continue
        item_warnings = list(item.warnings)
        if item.kind == "identify":
            # An identify may name only its anonymous id (analytics.js's identify(traits)
            # before a login): its traits are that visitor's until a user is identified.
            if item.user_id is None and item.anonymous_id is None:
                errors[index] = [field_error("user", "is required to identify (or anonymous_id)")]
                events.append(None)
                continue
            if item.user_id is not None:
                known_users.add(item.user_id)
        elif item.kind == "alias":
            if item.user_id is None or item.anonymous_id is None:
                errors[index] = [field_error("user", "and the previous id are required")]
                events.append(None)
                continue
        elif require_known and item.user_id is not None and item.user_id not in known_users:
            if not store.user_exists(app.app_id, item.user_id):
                errors[index] = [field_error("user", UNKNOWN_USER)]
                events.append(None)
                continue
            known_users.add(item.user_id)

        ts, clamped = corrected_time(item.timestamp_ms, payload.sent_at_ms, received_at)
        context = item.context
        if clamped:
            context["clock_skew_clamped"] = True
            item_warnings.append(field_error("timestamp", "is more than 23 h ahead; clamped"))
        if caller.source == "browser":
            ip, ua = peer_ip, header_ua
        else:
            ip, ua = item.ip, item.ua
        is_bot, reason = enrich_context(
            context,
            source=caller.source,
            ip=ip,
            user_agent=ua,
            ip_mode=ip_mode,
            headers=headers if caller.source == "browser" else None,
            own_hosts=site_hosts,
        )
        events.append(
            Event(
                kind=item.kind,
                name=item.name,
                app_id=app.app_id,
                user_id=item.user_id,
                anonymous_id=item.anonymous_id,
                message_id=item.message_id,
                ts=ts,
                received_at=received_at,
                timestamp=item.timestamp_raw
                or (iso(item.timestamp_ms) if item.timestamp_ms is not None else None),
                # Epoch milliseconds (as the browser SDK sends) are kept as ISO text.
                sent_at=payload.sent_at_raw
                or (iso(payload.sent_at_ms) if payload.sent_at_ms is not None else None),
                properties=item.properties,
                context=context,
                traits=item.traits,
                id=ids.event_id(ts),
                is_bot=is_bot,
                bot_reason=reason,
                rules=tuple(rules_by_event.get(item.name, ())),
            )
        )
        if item_warnings:
            warnings[index] = item_warnings
    return events, errors, warnings


def corrected_time(ts: int | None, sent_at: int | None, received_at: int) -> tuple[int, bool]:
    """The stored event time: client time shifted by the client's clock skew
    (`received_at − (sent_at − timestamp)`), clamped if still over 23 h ahead."""
    if ts is None:
        return received_at, False
    if sent_at is not None:
        ts = received_at - (sent_at - ts)
    if ts > received_at + MAX_FUTURE_MS:
        return received_at, True
    return ts, False


def batch_answer(
    outcomes: dict[int, Outcome],
    errors: dict[int, list[FieldError]],
    warnings: dict[int, list[FieldError]],
    path: str = "events",
) -> tuple[int, dict[str, Any]]:
    """A batch's answer; `path` is where the body holds its events, to name one in the
    error when none is valid."""
    accepted = [o.event_id for _, o in sorted(outcomes.items()) if o.status == "accepted"]
    duplicates = [o.event_id for _, o in sorted(outcomes.items()) if o.status == "duplicate"]
    discarded = [
        {"index": i, "reason": o.reason}
        for i, o in sorted(outcomes.items())
        if o.status == "discarded"
    ]
    body: dict[str, Any] = {
        "success": not errors,
        "accepted": accepted,
        "duplicates": duplicates,
        "discarded": discarded,
        "errors": [{"index": i, "errors": e} for i, e in sorted(errors.items())],
        "warnings": [{"index": i, **w} for i, ws in sorted(warnings.items()) for w in ws],
    }
    if errors and not outcomes:
        # Nothing valid: the one error shape, each field named by its path in the batch.
        raise InvalidRequest(
            "No valid events in the batch",
            [
                field_error(f"{path}[{i}]" + (f".{e['field']}" if e["field"] else ""), e["message"])
                for i, errs in sorted(errors.items())
                for e in errs
            ],
        )
    body["message"] = f"{len(accepted)} accepted, {len(duplicates)} duplicates, " + (
        f"{len(discarded)} discarded, {len(errors)} invalid"
    )
    return 202, body


_ACCEPTED = {"identify": "User identified", "alias": "Alias recorded"}


def single_answer(
    kind: str,
    outcome: Outcome | None,
    errors: list[FieldError] | None,
    warnings: list[FieldError] | None,
) -> tuple[int, dict[str, Any]]:
    """A single event's answer; its errors raised as the one status that fits them."""
    if errors:
        messages = {e["message"] for e in errors}
        if EVENT_TOO_LARGE in messages:
            raise PayloadTooLarge("Event exceeds 32 KB", errors)
        if UNKNOWN_USER in messages:
            raise NotFound("Unknown user", errors)
        raise InvalidRequest(errors=errors)
    assert outcome is not None
    body: dict[str, Any] = {"success": True, "event_id": outcome.event_id}
    if outcome.status == "accepted":
        body["message"] = _ACCEPTED.get(kind, "Event tracked successfully")
    elif outcome.status == "duplicate":
        body["message"] = "Duplicate message_id: already stored"
        body["duplicate"] = True
    else:
        body["message"] = f"Event discarded: {outcome.reason}"
        body["discarded"] = True
        body["reason"] = outcome.reason
    if warnings:
        body["warnings"] = warnings
    return 202, body


__all__ = [
    "AppCache",
    "Caller",
    "batch_answer",
    "browser_caller",
    "build_events",
    "check_event_budget",
    "check_rate",
    "corrected_time",
    "is_app_id",
    "server_caller",
    "single_answer",
    "write_key_caller",
]
