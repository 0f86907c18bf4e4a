"""Segment's HTTP Tracking API, as Segment's libraries, analytics.js (analytics-next)
and RudderStack's libraries send it.

Messages `{"type": "track" | "identify" | "page" | "screen" | "group" | "alias",
"userId", "anonymousId", "messageId", "timestamp", "context", ...}`, one per request or
`{"batch": [...], "sentAt", "context"}` (a batch's context is each message's, under the
message's own keys); the key is Basic auth's user name or `writeKey` in the body. Each
message becomes a canonical item:

- track → the event as named; identify → traits (top level over `context.traits`);
- page → `page_viewed`, screen → `screen_viewed`: `name` and `category` in properties,
  `context.page` (else the properties) → url, path, referrer, title;
- group → `group_identified` with `group_id` and `group_traits` in properties;
- alias → an alias call: what `previousId` did counts for `userId`.

Of the context only what we use is kept (page, locale, timezone, screen, library);
the rest (userAgentData, device, os, deep objects) is dropped, never an error.
`context.ip` and `context.userAgent` are read from server keys only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.errors import FieldError, InvalidRequest, field_error
from collector.ingest.dialects.base import (
    Dialect,
    batch_items,
    build_payload,
    envelope,
    put_text,
    rename,
    screen_size,
    sent_at,
    text,
)
from collector.ingest.normalize import Item, Payload, normalize_item
from collector.models import Kind, Source

TYPES = ("track", "identify", "page", "screen", "group", "alias")
# analytics.js posts each call to /v1/ + its type's first letter.
SHORT_TYPES = {t[0]: t for t in TYPES}
VIEWED = {"page": "page_viewed", "screen": "screen_viewed"}
GROUP_EVENT = "group_identified"

# Keys only Segment's shape has: a body on a path we share with our own API
# (/v1/track, /v1/identify) that carries one of them is answered the Segment way.
_MARKS = ("writeKey", "messageId", "type", "integrations", "originalTimestamp", "previousId")
# Segment's names for whom a message is about, as its docs' examples send them with none
# of the marks above. Our own format reads `userId` and `anonymousId` too, as lenient
# aliases, so a body is Segment's by them only when it has no key of ours besides
# (`user_id`, `metadata`, `app_id`...: Userpilot's /v1/track bodies stay ours).
_CAMEL = ("userId", "anonymousId")
_OURS = frozenset(
    {
        "user",
        "user_id",
        "externalId",
        "anonymous_id",
        "message_id",
        "event_name",
        "eventKey",
        "metadata",
        "app_id",
        "appId",
        "sent_at",
        "events",
        "ip",
        "ua",
        "user_agent",
        "userAgent",
    }
)


# Our field names in an error → the fields of the Segment message they came from.
NAMES = {
    "user": "userId",
    "anonymous_id": "anonymousId",
    "message_id": "messageId",
    "ip": "context.ip",
    "ua": "context.userAgent",
    "app_id": "writeKey",  # a browser's write key is its app id
    **{f"context.{key}": f"context.page.{key}" for key in ("url", "path", "referrer", "title")},
}
_ALIAS_NAMES = {**NAMES, "anonymous_id": "previousId"}
_GROUP_NAMES = {
    **NAMES,
    "properties.group_id": "groupId",
    "properties.group_traits": "traits",
}


class Segment(Dialect):
    name = "segment"
    names: Mapping[str, str] = NAMES

    def speaks(self, data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        if any(key in data for key in _MARKS):
            return True
        context = data.get("context")
        if isinstance(context, dict) and "library" in context:
            return True
        if _OURS.intersection(data):
            return False
        # Our own format names the User-Agent `ua` or `context.user_agent`, never this.
        return any(key in data for key in _CAMEL) or (
            isinstance(context, dict) and "userAgent" in context
        )

    def write_key(self, data: Any) -> str | None:
        if not isinstance(data, dict):
            return None
        key = data.get("writeKey")
        if key is None and isinstance(data.get("batch"), list) and data["batch"]:
            first = data["batch"][0]  # analytics.js puts it on every message of a batch
            key = first.get("writeKey") if isinstance(first, dict) else None
        return key if isinstance(key, str) else None

    def payload(
        self, data: Any, source: Source, message_type: str | None, body_size: int
    ) -> Payload:
        body = envelope(data)
        sent_raw = body.get("sentAt")
        sent_ms = sent_at(sent_raw, "sentAt")
        shared: dict[str, Any] | None = None
        if message_type is None:
            messages = batch_items(body.get("batch"), "batch")
            is_batch = True
            # A batch's own context is every message's (Segment's batch API), under what
            # a message's context says for itself.
            # Checked as Any first: compiled, a str assigned to `shared` would be a
            # TypeError (a 500) before the check could name it.
            context: Any = body.get("context")
            if context is not None and not isinstance(context, dict):
                raise InvalidRequest(errors=[field_error("context", "must be an object")])
            shared = context
        else:
            messages = [body]
            is_batch = False

        def convert(message: Any) -> Item | list[FieldError]:
            return segment_item(message, source, message_type, shared)

        return build_payload(
            messages,
            is_batch=is_batch,
            sent_raw=sent_raw,
            sent_ms=sent_ms,
            body_size=body_size,
            convert=convert,
        )


def segment_item(
    message: Any,
    source: Source,
    message_type: str | None,
    shared_context: dict[str, Any] | None = None,
) -> Item | list[FieldError]:
    """One Segment message as a canonical item, or its field errors; `shared_context` is
    its batch's context, under the message's own."""
    if not isinstance(message, dict):
        return [field_error("event", "must be a JSON object")]
    mtype = message_type or message.get("type") or "track"
    if mtype not in TYPES:
        return [field_error("type", "must be one of " + ", ".join(TYPES))]
    get = message.get
    raw_context = get("context")
    if shared_context:
        if raw_context is None:
            raw_context = shared_context
        elif isinstance(raw_context, dict):
            raw_context = {**shared_context, **raw_context}
    context_in: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    properties: Any = get("properties")
    canonical: dict[str, Any] = {
        "user": get("userId"),
        "anonymous_id": get("anonymousId"),
        "message_id": get("messageId"),
        "timestamp": get("timestamp") if get("timestamp") is not None else get("originalTimestamp"),
        "context": context(context_in),
    }
    kind: Kind = "track"
    errors: list[FieldError] = []
    if raw_context is not None and not isinstance(raw_context, dict):
        errors.append(field_error("context", "must be an object"))

    if mtype == "track":
        canonical["event"] = get("event")
        canonical["properties"] = properties
    elif mtype == "page" or mtype == "screen":
        canonical["event"] = VIEWED[mtype]
        if properties is None or isinstance(properties, dict):
            props: dict[str, Any] = dict(properties or {})
            for key in ("name", "category"):
                if get(key) is not None:
                    props[key] = get(key)
            canonical["properties"] = props
            for key in ("url", "path", "referrer", "title"):
                put_text(canonical["context"], key, props.get(key))
        else:
            canonical["properties"] = properties  # normalize names the error
    elif mtype == "identify":
        kind = "identify"
        traits = get("traits")
        context_traits = context_in.get("traits")
        if isinstance(context_traits, dict) and (traits is None or isinstance(traits, dict)):
            traits = {**context_traits, **(traits or {})}
        canonical["traits"] = traits
    elif mtype == "group":
        group_id = get("groupId")
        if group_id is None:
            errors.append(field_error("groupId", "is required"))
        canonical["event"] = GROUP_EVENT
        canonical["properties"] = {"group_id": group_id, "group_traits": get("traits") or {}}
    else:  # alias
        previous = get("previousId")
        if previous is None:
            errors.append(field_error("previousId", "is required"))
        elif get("userId") is None:
            errors.append(field_error("userId", "is required"))
        if previous is not None and previous == get("userId"):
            # analytics.js, once identified, sends alias(to) with the current user as both
            # ids: nothing to alias; its anonymous id is linked, as an identify would.
            kind = "identify"
        else:
            kind = "alias"
            canonical["anonymous_id"] = previous

    if source == "server":
        # The visitor's address and browser, which only a server (holding a key) may state.
        if context_in.get("ip") is not None:
            canonical["ip"] = context_in["ip"]
        if context_in.get("userAgent") is not None:
            canonical["ua"] = context_in["userAgent"]

    item = normalize_item(canonical, source=source, forced_kind=kind)
    if isinstance(item, list):
        names = _ALIAS_NAMES if kind == "alias" else _GROUP_NAMES if mtype == "group" else NAMES
        if get("timestamp") is None and get("originalTimestamp") is not None:
            names = {**names, "timestamp": "originalTimestamp"}
        return errors + rename(item, names)
    return errors or item


def context(raw: dict[str, Any]) -> dict[str, Any]:
    """Segment's context reduced to the keys we use: page → url, path, referrer, title;
    locale; timezone; screen as "WxH"; library as "name/version"."""
    out: dict[str, Any] = {}
    page = raw.get("page")
    if isinstance(page, dict):
        for key in ("url", "path", "referrer", "title"):
            put_text(out, key, page.get(key))
    put_text(out, "locale", raw.get("locale"))
    put_text(out, "timezone", raw.get("timezone"))
    screen = raw.get("screen")
    if isinstance(screen, dict):
        size = screen_size(screen.get("width"), screen.get("height"))
        if size is not None:
            out["screen"] = size
    library = raw.get("library")
    if isinstance(library, dict):
        name, version = text(library.get("name")), text(library.get("version"))
        if name:
            out["library"] = f"{name}/{version}" if version else name
    else:
        put_text(out, "library", library)
    return out
