"""Request bodies in, canonical items out.

Every shape the seed APIs document is accepted here and nowhere else: the canonical
`{"event", "user", ...}`, the `event_name`/`user_id`/`metadata` and `eventKey`/`externalId`
aliases, batches (`events` or Segment's `batch`), identify calls, and seed 002's
`{"user": {"email"|"_id"}, "event": {TYPE: {...}}}`. Validation names every problem once,
with its field as the client named it; an invalid item in a batch never blocks its valid
neighbours.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector.errors import (
    FieldError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    field_error,
)
from collector.models import Kind, Source
from collector.timeutil import parse_timestamp

MAX_REQUEST_BYTES = 512 * 1024
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 2000
MAX_NAME = 255
MAX_ID = 255
MAX_DEPTH = 3  # properties → nested object → nested object

EVENT_TOO_LARGE = f"is larger than {MAX_EVENT_BYTES} bytes"

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Context keys only enrichment may set: a browser can never claim an IP, a UA or a verdict.
RESERVED_CONTEXT = frozenset(
    {
        "source",
        "ip",
        "user_agent",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "device_type",
        "is_bot",
        "bot_reason",
        "clock_skew_clamped",
        # geo.py and sources.py
        "country",
        "referrer_host",
        "referrer_name",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "ref",
    }
)

# Seed 002's standard event types that are not plain names.
_SEED_TYPE_NAMES = {
    "email_open": "email_opened",
    "emailopen": "email_opened",
    "email_opened": "email_opened",
    "open": "email_opened",
}


@dataclass(slots=True)
class Item:
    """One normalised event or identify call, not yet enriched."""

    kind: Kind
    name: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    timestamp_ms: int | None
    timestamp_raw: str | None
    properties: dict[str, Any]
    traits: dict[str, Any] | None
    context: dict[str, Any]
    ip: str | None = None  # server-supplied visitor IP
    ua: str | None = None  # server-supplied visitor User-Agent
    warnings: list[FieldError] = field(default_factory=list)


@dataclass(slots=True)
class Payload:
    app_id: str | None
    sent_at_ms: int | None
    sent_at_raw: str | None
    is_batch: bool
    items: list[Item | list[FieldError]]
    warnings: list[FieldError] = field(default_factory=list)


def decode_body(body: bytes, content_type: str | None, size: int | None = None) -> Any:
    """JSON from the raw body: 415 for a wrong type, 413 past the size cap, 400 if unparsable.
    `size` is the body's length as received, when `body` holds only its start."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in {"application/json", "text/plain", ""} and not media.endswith("+json"):
        raise UnsupportedMediaType(
            errors=[field_error("content-type", f"{media!r} is not application/json or text/plain")]
        )
    size = len(body) if size is None else size
    if size > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            "Request body exceeds 512 KB",
            [field_error("body", f"is {size} bytes; the limit is {MAX_REQUEST_BYTES}")],
        )
    if not body.strip():
        raise InvalidRequest("Request body is empty", [field_error("body", "is required")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position, never anything internal.
        raise InvalidRequest(
            "Request body is not valid JSON", [field_error("body", f"is not valid JSON: {exc}")]
        ) from None


def _batch_key(data: dict[str, Any]) -> str | None:
    """The key of an envelope's list of events, if it has one."""
    return "events" if "events" in data else "batch" if "batch" in data else None


def batch_size(data: Any) -> int | None:
    """How many events a decoded body holds, as `parse_payload` will count them (one per
    item of its batch, valid or not), read before any of them is validated; None when
    `parse_payload` will refuse the body whatever its events (not an object, a batch
    that is not a list, is empty or is over MAX_BATCH_EVENTS)."""
    if isinstance(data, list):
        items: Any = data
    elif not isinstance(data, dict):
        return None
    elif (key := _batch_key(data)) is not None:
        items = data[key]
    else:
        return 1
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH_EVENTS:
        return None
    return len(items)


def parse_payload(
    data: Any, *, source: Source, forced_kind: Kind | None = None, body_size: int = 0
) -> Payload:
    """Split a decoded body into envelope fields and normalised items."""
    if isinstance(data, list):
        data = {"events": data}
    if not isinstance(data, dict):
        raise InvalidRequest(
            "Request body must be a JSON object", [field_error("body", "must be a JSON object")]
        )
    envelope_errors: list[FieldError] = []
    app_id = data.get("app_id", data.get("appId"))
    if app_id is not None and not isinstance(app_id, str):
        envelope_errors.append(field_error("app_id", "must be a string"))
        app_id = None
    sent_key = "sent_at" if "sent_at" in data else "sentAt"
    sent_raw = data.get(sent_key)
    sent_ms: int | None = None
    sent_warnings: list[FieldError] = []
    if sent_raw is not None:
        sent_ms = client_time(sent_raw, sent_key, envelope_errors, sent_warnings)
    shared_context = data.get("context") if isinstance(data.get("context"), dict) else None

    raw_items: list[Any]
    batch_key = _batch_key(data)
    if batch_key is not None:
        raw_items_value = data[batch_key]
        if not isinstance(raw_items_value, list):
            envelope_errors.append(field_error(batch_key, "must be a list of events"))
            raw_items = []
        elif not raw_items_value:
            envelope_errors.append(field_error(batch_key, "must not be empty"))
            raw_items = []
        elif len(raw_items_value) > MAX_BATCH_EVENTS:
            raise PayloadTooLarge(
                f"A batch holds at most {MAX_BATCH_EVENTS} events",
                [field_error(batch_key, f"has {len(raw_items_value)} events")],
            )
        else:
            raw_items = raw_items_value
        is_batch = True
    else:
        raw_items = [data]  # the envelope's keys are not the event's, and are not read
        is_batch = False
    if envelope_errors:
        raise InvalidRequest("Invalid request", envelope_errors)

    # Per-event size only needs checking when the whole body could hold an oversized event.
    check_size = body_size > MAX_EVENT_BYTES
    items: list[Item | list[FieldError]] = []
    for raw in raw_items:
        if check_size and _event_size(raw, is_batch) > MAX_EVENT_BYTES:
            items.append([field_error("event", EVENT_TOO_LARGE)])
            continue
        item = normalize_item(
            raw, source=source, forced_kind=forced_kind, shared_context=shared_context
        )
        if sent_warnings and isinstance(item, Item):
            # Answers carry warnings per event, so each event the envelope came with
            # tells how its sent_at was read.
            item.warnings.extend(sent_warnings)
        items.append(item)
    return Payload(
        app_id, sent_ms, sent_raw if isinstance(sent_raw, str) else None, is_batch, items
    )


_ENVELOPE_KEYS = frozenset({"app_id", "appId", "sent_at", "sentAt"})


def _event_size(raw: Any, is_batch: bool) -> int:
    """An event's size as JSON; a single event's without the envelope keys beside it."""
    if not is_batch and isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in _ENVELOPE_KEYS}
    return len(orjson.dumps(raw))


def normalize_item(
    raw: Any,
    *,
    source: Source,
    forced_kind: Kind | None = None,
    shared_context: dict[str, Any] | None = None,
) -> Item | list[FieldError]:
    """One event or identify call in any accepted shape → an Item, or its field errors."""
    if not isinstance(raw, dict):
        # The item itself: no field of it is to blame (its path in the batch names it).
        return [field_error("", "must be a JSON object")]
    errors: list[FieldError] = []
    warnings: list[FieldError] = []

    get = raw.get
    kind: Kind = forced_kind or ("identify" if get("type") == "identify" else "track")
    # The canonical key first; the aliases only when it is absent. Errors name the key the
    # client sent, in its own API's words; a missing one as the API of the body's other
    # keys names it (Cueflow's `externalId`, Userpilot's `event_name`).
    name_key, name_value = _pick(raw, "event", "event_name", "eventKey", "name")
    user_key, user_value = _pick(raw, "user", "user_id", "userId", "externalId")
    metadata_value: Any = get("metadata")
    if name_key is None:
        name_key = _missing_name_key(user_key, metadata_value is not None)
    if user_key is None:
        user_key = _missing_user_key(name_key, metadata_value is not None)
    seed_shaped = isinstance(name_value, dict) and kind == "track"

    user_id, user_traits = _user(user_value, user_key, seed_shaped, errors)

    name: str = kind  # an identify or alias call is named after its kind
    seed_props: dict[str, Any] | None = None
    seed_path = ""
    if seed_shaped:
        # Seed 002: {"event": {TYPE: {...}}}. A malformed one has its one error, not a
        # second that the event's name is no string.
        seed = _seed_event(name_value, name_key, errors)
        if seed is not None:
            kind, seed_name, name_path, seed_props, seed_path = seed
            if kind == "track":
                name = _name(seed_name, name_path, errors, warnings)
    elif kind == "track":
        name = _name(name_value, name_key, errors, warnings)

    anon_key, anon_value = _pick(raw, "anonymous_id", "anonymousId")
    anonymous_id = _optional_id(anon_value, anon_key or "anonymous_id", errors)
    # Required only when no id was sent at all: one that was sent and refused has its error.
    if user_value is None and anon_value is None:
        if source == "browser":
            errors.append(field_error(user_key, "is required (or anonymous_id)"))
        else:
            errors.append(field_error(user_key, "is required"))

    message_key, message_value = _pick(raw, "message_id", "messageId")
    message_id = _optional_id(message_value, message_key or "message_id", errors)

    ts_raw = raw.get("timestamp")
    ts_ms: int | None = None
    if ts_raw is not None:
        ts_ms = client_time(ts_raw, "timestamp", errors, warnings)

    # Objects sent under several names are merged, each checked under its own name.
    properties = _object(get("properties"), "properties", errors) or {}
    if seed_props is not None and kind == "track":
        _check_values(seed_props, seed_path, 1, errors)
        properties = {**seed_props, **properties}
    if metadata_value is not None:
        # Userpilot's name for properties. A client that sends both (a shared helper adding
        # `properties` to a Userpilot body) means both: merged, its explicit `properties`
        # winning a key they share.
        metadata = _object(metadata_value, "metadata", errors)
        if metadata:
            properties = {**metadata, **properties}

    traits = _object(get("traits"), "traits", errors)
    if user_traits is not None:
        traits = {**user_traits, **(traits or {})}
    if seed_props is not None and kind == "identify":
        _check_values(seed_props, seed_path, 1, errors)
        traits = {**(traits or {}), **seed_props}

    context: dict[str, Any] = dict(shared_context) if shared_context else {}
    ctx_value = raw.get("context")
    if ctx_value is not None:
        if isinstance(ctx_value, dict):
            context.update(ctx_value)
        else:
            errors.append(field_error("context", "must be an object"))
    _check_values(context, "context", 1, errors)

    # Only a server (holding a key) speaks for its visitor's IP and User-Agent.
    ip = _first(raw, "ip") if "ip" in raw else context.get("ip")
    ua = _first(raw, "ua", "user_agent", "userAgent") or context.get("user_agent")
    if source == "browser":
        if ip is not None or raw.get("ua") is not None:
            warnings.append(field_error("ip", "ip and ua are ignored on browser requests"))
        ip = ua = None
    else:
        if ip is not None and not isinstance(ip, str):
            errors.append(field_error("ip", "must be a string"))
        elif ip is not None and not _is_ip(ip):
            errors.append(field_error("ip", "must be an IPv4 or IPv6 address"))
        if ua is not None and not isinstance(ua, str):
            errors.append(field_error("ua", "must be a string"))
        elif ua is not None and "\x00" in ua:
            # Stored as text: PostgreSQL refuses a NUL in text and JSON, SQLite cuts at it.
            errors.append(field_error("ua", "must not contain NUL characters"))
    for key in RESERVED_CONTEXT.intersection(context):
        del context[key]

    if errors:
        return errors
    return Item(
        kind=kind,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        message_id=message_id,
        timestamp_ms=ts_ms,
        timestamp_raw=ts_raw if isinstance(ts_raw, str) else None,
        properties=properties,
        traits=traits,
        context=context,
        ip=ip if isinstance(ip, str) else None,
        ua=ua if isinstance(ua, str) else None,
        warnings=warnings,
    )


# An epoch number below this is read as seconds: as milliseconds it would be a time before
# 1973-03-03, which no client means, while as seconds it reaches the year 5138. Mixpanel's
# `time`, Python's `time.time()` and `date +%s` are seconds; read as milliseconds they
# were stored, without a word, in January 1970.
SECONDS_BELOW = 100_000_000_000
READ_AS_SECONDS = (
    "was read as epoch seconds (as milliseconds, a number below 100000000000 would be a"
    " time before March 1973)"
)
_NOT_A_TIME = "must be an ISO 8601 string or epoch milliseconds"


def client_time(
    value: Any, name: str, errors: list[FieldError], warnings: list[FieldError]
) -> int | None:
    """Epoch ms from a client's ISO 8601 string or epoch number (or a string of digits);
    a number below SECONDS_BELOW is read as seconds, with a warning. None, with an error
    naming `name`, for anything else."""
    number: int | float | None = None
    if isinstance(value, bool):
        errors.append(field_error(name, _NOT_A_TIME))
        return None
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            if not text.isascii():  # "²" is a digit to str.isdigit, not to int()
                errors.append(field_error(name, _NOT_A_TIME))
                return None
            number = int(text)
    if number is not None:
        if isinstance(number, float) and not math.isfinite(number):
            errors.append(field_error(name, "must be a finite number"))
            return None
        if number < 0:
            errors.append(field_error(name, "must not be negative (a time after 1970)"))
            return None
        if number < SECONDS_BELOW:
            warnings.append(field_error(name, READ_AS_SECONDS))
            number = number * 1000 if isinstance(number, int) else round(number * 1000)
        value = number
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        errors.append(field_error(name, str(exc)))
        return None


def _object(value: Any, name: str, errors: list[FieldError]) -> dict[str, Any] | None:
    """An object of property values as sent, or None with its errors named after `name`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(field_error(name, "must be an object"))
        return None
    _check_values(value, name, 1, errors)
    return value


def _is_ip(text: str) -> bool:
    # No IPv6 zone ("%eth0"): ipaddress accepts any text there, and it names no visitor.
    if len(text) > 45 or "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _pick(raw: dict[str, Any], *keys: str) -> tuple[str | None, Any]:
    """The first of `keys` that holds a value, and its value; (None, None) if none does."""
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return key, value
    return None, None


def _missing_name_key(user_key: str | None, has_metadata: bool) -> str:
    """What the API whose keys a body uses calls the event's name."""
    if user_key == "externalId":  # Cueflow
        return "eventKey"
    if user_key == "user_id" or has_metadata:  # Appizer, Userpilot
        return "event_name"
    return "event"


def _missing_user_key(name_key: str, has_metadata: bool) -> str:
    """What the API whose keys a body uses calls the user."""
    if name_key == "eventKey":  # Cueflow
        return "externalId"
    if name_key == "event_name" or has_metadata:  # Appizer, Userpilot
        return "user_id"
    return "user"


def _first(raw: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return value
    return None


def _name(value: Any, key: str, errors: list[FieldError], warnings: list[FieldError]) -> str:
    if type(value) is str and value in _GOOD_NAMES:  # a snake_case name seen before
        return value
    if value is None:
        errors.append(field_error(key, "is required"))
        return ""
    if not isinstance(value, str):
        errors.append(field_error(key, "must be a string"))
        return ""
    if not 1 <= len(value) <= MAX_NAME:
        errors.append(field_error(key, f"must be 1 to {MAX_NAME} characters"))
        return ""
    if _CONTROL.search(value):
        errors.append(field_error(key, "must not contain control characters"))
        return ""
    if not _SNAKE.match(value):
        warnings.append(field_error(key, f"{value!r} is not snake_case (e.g. user_signed_up)"))
    elif len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(value)
    return value


# Valid snake_case event names already checked: an app sends a few names over and over.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 10_000


def _user(
    value: Any, key: str, seed_shaped: bool, errors: list[FieldError]
) -> tuple[str | None, dict[str, Any] | None]:
    if value is None:
        return None, None
    if isinstance(value, dict):
        traits: Any = value.get("traits")
        id_key, ident = _pick(value, "id", "user_id", "userId", "_id", "email")
        if id_key is None:
            if seed_shaped:  # seed 002 names its user by `email` or `_id`
                errors.append(field_error(key, "must have an email or an _id"))
            else:
                errors.append(field_error(f"{key}.id", "is required"))
            return None, None
        user_id = _optional_id(ident, f"{key}.{id_key}", errors)
        # Seed 002 names a user by both: the _id is the user, the email a trait.
        extra = {k: v for k, v in value.items() if k in {"email"}}
        _check_values(extra, key, 1, errors)
        merged = {**extra, **(_object(traits, f"{key}.traits", errors) or {})}
        return user_id, merged or None
    return _optional_id(value, key, errors), None


def _optional_id(value: Any, name: str, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        if isinstance(value, float) and value.is_integer():
            # JSON's whole numbers past 64 bits arrive as floats (orjson): digits lost.
            errors.append(field_error(name, "is a number too large to keep exactly: send a string"))
        else:
            errors.append(field_error(name, "must be a string"))
        return None
    text = str(value)
    if not 1 <= len(text) <= MAX_ID:
        errors.append(field_error(name, f"must be 1 to {MAX_ID} characters"))
        return None
    if _CONTROL.search(text):
        errors.append(field_error(name, "must not contain control characters"))
        return None
    return text


def _seed_event(
    value: dict[str, Any], key: str, errors: list[FieldError]
) -> tuple[Kind, Any, str, dict[str, Any], str] | None:
    """Seed 002's event `{TYPE: {...}}` under `key`: its kind, its name and that name's
    path, its fields (traits or properties) and their path; None with its error."""
    if len(value) != 1:
        errors.append(field_error(key, 'must hold exactly one event type, e.g. {"update": {...}}'))
        return None
    ((etype, body),) = value.items()
    if not isinstance(body, dict):
        errors.append(field_error(f"{key}.{etype}", "must be an object"))
        return None
    path = f"{key}.{etype}"
    if etype in {"update", "login"}:
        return "identify", "identify", key, body, path
    if etype == "generic":
        # The seed's own example nests twice: {"generic": {"generic": {...}}}.
        nested = body.get("generic")
        if isinstance(nested, dict):
            path += ".generic"
        props = dict(nested) if isinstance(nested, dict) else dict(body)
        return "track", props.pop("event_name", None), f"{path}.event_name", props, path
    return "track", _SEED_TYPE_NAMES.get(etype.lower(), etype), key, body, path


def _check_values(value: Any, path: str, depth: int, errors: list[FieldError]) -> None:
    """Property values: scalars, ISO dates (strings), and lists/objects of them, shallowly.
    This runs for every value of every event: an object of plain scalars (the usual
    properties and context) is passed in one loop of type checks, and a child's path is
    only spelled out for an error."""
    if type(value) is dict and depth <= MAX_DEPTH:
        for key, item in value.items():
            kind = type(item)
            if (
                not key
                or len(key) > MAX_NAME
                or "\x00" in key
                or (kind is str and "\x00" in item)
                or kind not in _PLAIN
            ):
                break
        else:
            return  # every key valid, every value a plain scalar
    _check_values_slow(value, path, depth, errors)


# Value types that need no check beyond their type (strings only for NUL characters).
_PLAIN = frozenset({str, int, bool, type(None)})


def _check_values_slow(value: Any, path: str, depth: int, errors: list[FieldError]) -> None:
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            errors.append(field_error(path, f"nests deeper than {MAX_DEPTH} levels"))
            return
        for key, item in value.items():
            if not key or len(key) > MAX_NAME or "\x00" in key:
                errors.append(field_error(path, f"has an invalid key {key[:40]!r}"))
            elif isinstance(item, dict | list):
                _check_values_slow(item, f"{path}.{key}", depth + 1, errors)
            elif (problem := _scalar_problem(item)) is not None:
                errors.append(field_error(f"{path}.{key}", problem))
    elif isinstance(value, list):
        if depth > MAX_DEPTH:
            errors.append(field_error(path, f"nests deeper than {MAX_DEPTH} levels"))
            return
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                _check_values_slow(item, f"{path}[{i}]", depth + 1, errors)
            elif (problem := _scalar_problem(item)) is not None:
                errors.append(field_error(f"{path}[{i}]", problem))
    elif (problem := _scalar_problem(value)) is not None:
        errors.append(field_error(path, problem))


def _scalar_problem(value: Any) -> str | None:
    """What is wrong with a scalar property value, or None if nothing is."""
    kind = type(value)
    if kind is str:
        return "must not contain NUL characters" if "\x00" in value else None
    if kind is int or kind is bool or value is None:
        return None
    if kind is float:
        return None if math.isfinite(value) else "must be a finite number"
    return "has an unsupported type"  # orjson yields no other types
