"""PostHog's capture API, as PostHog's libraries send it: `{"api_key", "batch": [...],
"sent_at"}` (or one event with `api_key` beside it, or a bare list) of events
`{"event", "distinct_id", "properties", "timestamp", "uuid"}`.

- `distinct_id` → user (the anonymous id of a personless event,
  `"$process_person_profile": false`); `uuid` → message_id; `$pageview` → `page_viewed`,
  `$pageleave` → `page_left`, `$screen` → `screen_viewed`;
- `$identify`, `$set` and `$set_once` → an identify call, with `$set` (over
  `$set_once`) as traits, `$anon_distinct_id` as the anonymous id it links; `$set` on
  any other event merges traits too;
- `$create_alias` → an alias call: what `distinct_id` did counts for `alias`;
- `$groupidentify` → `group_identified` with group_id, group_type and group_traits;
- PostHog's own `$` properties are read where they map (`$current_url`, `$pathname`,
  `$referrer`, `$lib`, ...) and dropped otherwise; the rest are the event's properties.

The key is the project key of PostHog's setup: an app's API key from a server, or its
app id from a browser on an allowed origin. `$ip` and `$raw_user_agent` are read from
server keys only.

Bodies come as posthog-js sends them: gzip (said by `?compression=gzip-js`, or by the
gzip magic bytes alone, which is all recent posthog-js sends), base64 (`?compression=base64`:
the bare text from sendBeacon, or a form `data=` field), a form `data=` field of JSON, or
plain JSON. Its remote config and feature-flag calls are answered by `remote_config` and
`flags_answer`: no flags, nothing to load, the compression read here."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from collector.errors import (
    CollectorError,
    FieldError,
    InvalidRequest,
    UnsupportedMediaType,
    field_error,
)
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
from collector.ingest.encoding import decode_content
from collector.ingest.normalize import (
    MAX_REQUEST_BYTES,
    Item,
    Payload,
    decode_body,
    normalize_item,
)
from collector.models import Kind, Source

# $pageleave is our page_left: the page's end, which gives a visit its duration, and no
# interaction (a one-page visit with it is still a bounce).
RENAMED = {"$pageview": "page_viewed", "$pageleave": "page_left", "$screen": "screen_viewed"}
IDENTIFY = ("$identify", "$set", "$set_once")
GROUP_EVENT = "group_identified"
# PostHog's properties → our context.
_CONTEXT = {
    "$current_url": "url",
    "$pathname": "path",
    "$referrer": "referrer",
    "$title": "title",
    "title": "title",
    "$browser_language": "locale",
    "$timezone": "timezone",
}


# Our field names in an error → the fields of the PostHog event they came from.
NAMES = {
    "user": "distinct_id",
    "anonymous_id": "properties.$device_id",
    "message_id": "uuid",
    "traits": "$set",
    "ip": "properties.$ip",
    "ua": "properties.$raw_user_agent",
    "writeKey": "api_key",
    "app_id": "api_key",  # a browser's project key is its app id
    **{f"context.{ours}": f"properties.{theirs}" for theirs, ours in _CONTEXT.items()},
    "context.title": "properties.$title",
    "context.library": "properties.$lib",
    "properties.group_id": "properties.$group_key",
    "properties.group_type": "properties.$group_type",
    "properties.group_traits": "properties.$group_set",
}


_GZIP_MAGIC = b"\x1f\x8b"
_FORM = "application/x-www-form-urlencoded"


class PostHog(Dialect):
    name = "posthog"
    names: Mapping[str, str] = NAMES

    def decode(
        self, body: bytes, content_type: str | None, query: Mapping[str, str], size: int
    ) -> Any:
        if size > MAX_REQUEST_BYTES:
            return decode_body(body, content_type, size)  # the 413, named by its size
        if body[:2] == _GZIP_MAGIC:
            # Recent posthog-js gzips its body and says so nowhere: no Content-Encoding
            # (which would need a CORS preflight), no query parameter. JSON never starts
            # with these bytes, so they are enough.
            body = decode_content(body, "gzip", MAX_REQUEST_BYTES)
        compression = query.get("compression")
        if compression == "lz64":
            raise UnsupportedMediaType(
                "lz64 bodies are not read: send gzip-js, base64 or JSON",
                [field_error("compression", "'lz64' is not supported")],
            )
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == _FORM:
            # Older posthog-js, and any version posting base64 by fetch: `data=` holds
            # base64 or JSON.
            try:
                fields = dict(parse_qsl(body, keep_blank_values=True))
            except UnicodeDecodeError:  # a form is ASCII: its other bytes are %-escaped
                raise InvalidRequest(
                    "Form body is not URL-encoded",
                    [field_error("body", "is not application/x-www-form-urlencoded")],
                ) from None
            data = fields.get(b"data")
            if data is None or not data.strip():
                raise InvalidRequest(
                    "Form body has no data",
                    [field_error("data", "is required: the events, as JSON or base64")],
                )
            form_compression = fields.get(b"compression", b"").decode("latin-1")
            return _json_or_base64(data, compression or form_compression, "data")
        if compression == "base64":
            return _json_or_base64(body, compression, "body")  # sendBeacon's bare base64
        return decode_body(body, content_type, size)

    def write_key(self, data: Any) -> str | None:
        first: Any = data
        if isinstance(data, dict) and isinstance(data.get("batch"), list) and data["batch"]:
            first = data["batch"][0]
        elif isinstance(data, list) and data:
            first = data[0]
        for holder in (data, first):
            if isinstance(holder, dict):
                key = holder.get("api_key", holder.get("token"))
                if isinstance(key, str):
                    return key
        props = first.get("properties") if isinstance(first, dict) else None
        token = props.get("token") if isinstance(props, dict) else None  # posthog-js
        return token if isinstance(token, str) else None

    def payload(
        self, data: Any, source: Source, message_type: str | None, body_size: int
    ) -> Payload:
        if isinstance(data, list):
            data = {"batch": data}
        data = envelope(data)
        sent_raw = data.get("sent_at")
        sent_ms = sent_at(sent_raw, "sent_at")
        if "batch" in data:
            messages = batch_items(data["batch"], "batch")
            is_batch = True
        else:
            messages = [data]
            is_batch = False

        def convert(message: Any) -> Item | list[FieldError]:
            return posthog_item(message, source)

        return build_payload(
            messages,
            is_batch=is_batch,
            sent_raw=sent_raw,
            sent_ms=sent_ms,
            body_size=body_size,
            convert=convert,
        )

    def batch_path(self, data: Any) -> str:
        return "" if isinstance(data, list) else "batch"  # posthog-js posts a bare list

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": 1, **body}

    def error(self, exc: CollectorError) -> dict[str, Any]:
        # PostHog's own error fields: its Python client reads `detail`.
        body = exc.body()
        body["errors"] = self.rename(body["errors"])
        details = "; ".join(f"{e['field']} {e['message']}" for e in body["errors"])
        body["type"] = "validation_error" if exc.status < 500 else "server_error"
        body["code"] = exc.code
        body["detail"] = f"{exc.message}: {details}" if details else exc.message
        return body


def _json_or_base64(raw: bytes, compression: str, field: str) -> Any:
    """JSON from `raw`, base64-decoded first when it is base64: said by `compression`, or
    seen, as PostHog's own capture does, from its not being JSON."""
    raw = raw.strip()
    if not raw:
        raise InvalidRequest("Request body is empty", [field_error(field, "is required")])
    if compression == "base64" or raw[:1] not in (b"{", b"["):
        try:
            # A form field's `+` may arrive as a space; base64 has no spaces.
            raw = base64.b64decode(raw.replace(b" ", b"+"), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                "Request body is not valid base64",
                [field_error(field, "is neither JSON nor base64")],
            ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            "Request body is not valid JSON", [field_error(field, f"is not valid JSON: {exc}")]
        ) from None


def posthog_item(message: Any, source: Source) -> Item | list[FieldError]:
    """One PostHog event as a canonical item, or its field errors."""
    if not isinstance(message, dict):
        return [field_error("event", "must be a JSON object")]
    get = message.get
    errors: list[FieldError] = []
    raw_props = get("properties")
    if raw_props is not None and not isinstance(raw_props, dict):
        errors.append(field_error("properties", "must be an object"))
    props_in: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
    event = get("event")
    distinct_id = get("distinct_id", props_in.get("distinct_id"))
    user: Any = distinct_id
    anonymous: Any = props_in.get("$device_id")
    if anonymous is not None and anonymous == distinct_id:
        user = None  # posthog-js before identify: the distinct id is the device's

    context: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for key, value in props_in.items():
        mapped = _CONTEXT.get(key)
        if mapped is not None:
            put_text(context, mapped, value)
        elif not key.startswith("$") and key not in ("token", "distinct_id"):
            properties[key] = value
    size = screen_size(props_in.get("$screen_width"), props_in.get("$screen_height"))
    if size is not None:
        context["screen"] = size
    lib = text(props_in.get("$lib"))
    if lib:
        version = text(props_in.get("$lib_version"))
        context["library"] = f"{lib}/{version}" if version else lib

    traits: Any = None
    set_traits = get("$set", props_in.get("$set"))
    set_once = get("$set_once", props_in.get("$set_once"))
    if isinstance(set_traits, dict) or isinstance(set_once, dict):
        traits = {
            **(set_once if isinstance(set_once, dict) else {}),
            **(set_traits if isinstance(set_traits, dict) else {}),
        }

    kind: Kind = "track"
    name: Any = RENAMED.get(event, event) if isinstance(event, str) else event
    if event in IDENTIFY:
        kind = "identify"
        anon = props_in.get("$anon_distinct_id")
        anonymous = anon if anon is not None else anonymous
        user = distinct_id
    elif event == "$create_alias":
        kind = "alias"
        alias = props_in.get("alias")
        if alias is None:
            errors.append(field_error("properties.alias", "is required"))
        anonymous, user = distinct_id, alias
    elif event == "$groupidentify":
        name = GROUP_EVENT
        group_key = props_in.get("$group_key")
        if group_key is None:
            errors.append(field_error("properties.$group_key", "is required"))
        properties = {
            "group_id": group_key,
            "group_type": props_in.get("$group_type"),
            "group_traits": props_in.get("$group_set") or {},
        }

    personless = kind == "track" and props_in.get("$process_person_profile") is False
    if personless:
        # A personless event (posthog-python's capture without a distinct id, posthog-js's
        # person_profiles "identified_only" before identify): its distinct id, often a
        # random UUID per event, names no person, so it is an anonymous id and no user
        # is made or given traits. Identify and alias calls always name their person.
        user, anonymous, traits = None, distinct_id, None

    canonical: dict[str, Any] = {
        "event": name,
        "user": user,
        "anonymous_id": anonymous,
        "message_id": get("uuid"),
        "timestamp": get("timestamp"),
        "properties": properties,
        "traits": traits,
        "context": context,
    }
    if source == "server":
        if props_in.get("$ip") is not None:
            canonical["ip"] = props_in["$ip"]
        if props_in.get("$raw_user_agent") is not None:
            canonical["ua"] = props_in["$raw_user_agent"]
    item = normalize_item(canonical, source=source, forced_kind=kind)
    if isinstance(item, list):
        return errors + rename(item, _names(message, props_in, kind, personless))
    return errors or item


def _names(
    message: dict[str, Any], props: dict[str, Any], kind: Kind, personless: bool
) -> dict[str, str]:
    """NAMES for one event: where its user, anonymous id and traits came from."""
    names = dict(NAMES)
    if "distinct_id" not in message and "distinct_id" in props:
        names["user"] = "properties.distinct_id"  # posthog-js
    if kind == "alias":
        names["user"], names["anonymous_id"] = "properties.alias", names["user"]
    elif personless:
        names["anonymous_id"] = names["user"]
    elif kind == "identify" and props.get("$anon_distinct_id") is not None:
        names["anonymous_id"] = "properties.$anon_distinct_id"
    for key in ("$set", "$set_once"):
        if isinstance(message.get(key), dict):
            names["traits"] = key
            break
        if isinstance(props.get(key), dict):
            names["traits"] = "properties." + key
            break
    return names


# What posthog-js asks before it sends (`/array/<token>/config`, `config.js`, and the
# config part of `/flags/` and the older `/decide/`): the compression this module reads,
# and every feature that would load more code or send PostHog's own data off. Autocapture
# is off too: its events are element chains in `$` properties, which are not kept here.
# `surveys` is left out, not false: posthog-js loads its surveys code for any answer.
_REMOTE_CONFIG: dict[str, Any] = {
    "supportedCompression": ["gzip", "gzip-js", "base64"],
    "hasFeatureFlags": False,
    "autocapture_opt_out": True,
    "autocaptureExceptions": False,
    "captureDeadClicks": False,
    "capturePerformance": False,
    "heatmaps": False,
    "sessionRecording": False,
    "productTours": False,
    "siteApps": [],
    "siteAppsJS": [],
    "toolbarParams": {},
    "isAuthenticated": False,
    "defaultIdentifiedOnly": True,
}


def remote_config(token: str) -> dict[str, Any]:
    """The remote config posthog-js loads for a project key."""
    return {"token": token, **_REMOTE_CONFIG}


def flags_answer(token: str) -> dict[str, Any]:
    """The answer to `/flags/` (any version) and `/decide/`: no feature flags, evaluated
    without error, with the remote config that `/decide/` and `/flags/?config=true` carry."""
    return {
        **remote_config(token),
        "flags": {},
        "featureFlags": {},
        "featureFlagPayloads": {},
        "errorsWhileComputingFlags": False,
        "quotaLimited": [],
    }
