"""What every dialect shares: the `Dialect` interface the endpoint calls, and helpers
that turn another product's messages into our canonical items."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from collector.errors import (
    CollectorError,
    FieldError,
    InvalidRequest,
    PayloadTooLarge,
    field_error,
)
from collector.ingest.normalize import (
    EVENT_TOO_LARGE,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    Item,
    Payload,
    decode_body,
)
from collector.models import Source
from collector.timeutil import parse_timestamp


class Dialect:
    """One product's API. The endpoint reads the body and calls these in order:
    `speaks` (on a path shared with our own API), `write_key`, `payload`, then `answer`
    or `error` for what goes back."""

    name = ""
    # Our field names in an error → this product's, for what its client sent: a request's
    # errors name the field in the body the client wrote, never ours.
    names: Mapping[str, str] = {}

    def decode(
        self, body: bytes, content_type: str | None, query: Mapping[str, str], size: int
    ) -> Any:
        """The decoded body: JSON (415 for a wrong type, 413 past the size cap, 400 if
        unparsable). `size` is the body's length as received, when `body` holds only its
        start; `query` is the request's query string."""
        return decode_body(body, content_type, size)

    def speaks(self, data: Any) -> bool:
        """Whether a body sent to a path our own API shares is in this dialect."""
        return True

    def write_key(self, data: Any) -> str | None:
        """The key a body carries, for libraries that put it there instead of a header."""
        return None

    def payload(
        self, data: Any, source: Source, message_type: str | None, body_size: int
    ) -> Payload:
        """The body as canonical items; `message_type` is the path's, None for a batch."""
        raise NotImplementedError

    def batch_path(self, data: Any) -> str:
        """Where a body holds its list of messages, to name a message by its index."""
        return "batch"

    def rename(self, errors: list[FieldError]) -> list[FieldError]:
        """Field errors in this product's words (`names`)."""
        return rename(errors, self.names)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Our answer with what this product's libraries read besides; sent with 200."""
        return body

    def error(self, exc: CollectorError) -> dict[str, Any]:
        """The one error shape, with the fields this product's libraries read."""
        body = exc.body()
        body["errors"] = self.rename(body["errors"])
        body["code"] = exc.code
        return body


def rename(errors: list[FieldError], names: Mapping[str, str]) -> list[FieldError]:
    """`errors` with each field named by `names`, by the longest start of its path that
    `names` knows (`user.id` → `userId.id`); other fields are kept. No name that `names`
    gives starts with one of its keys, so renaming twice changes nothing."""
    if not names:
        return errors
    out: list[FieldError] = []
    for error in errors:
        path = error["field"]
        end = len(path)
        while end > 0 and path[:end] not in names:
            end = max(path.rfind(".", 0, end), path.rfind("[", 0, end))
        if end <= 0:
            out.append(error)
            continue
        message = error["message"]
        if path == "user" and "anonymous_id" in names:
            # normalize's "is required (or anonymous_id)" names the other field too.
            message = message.replace("anonymous_id", names["anonymous_id"])
        out.append(field_error(names[path[:end]] + path[end:], message))
    return out


def envelope(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest(
            "Request body must be a JSON object", [field_error("body", "must be a JSON object")]
        )
    return data


def sent_at(value: Any, name: str) -> int | None:
    """The batch's send time (for clock-skew correction), or a 400 naming the field."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise InvalidRequest(errors=[field_error(name, str(exc))]) from None


def batch_items(value: Any, name: str) -> list[Any]:
    """A batch's messages, checked as a list of at most MAX_BATCH_EVENTS."""
    if not isinstance(value, list):
        raise InvalidRequest(errors=[field_error(name, "must be a list of events")])
    if not value:
        raise InvalidRequest(errors=[field_error(name, "must not be empty")])
    if len(value) > MAX_BATCH_EVENTS:
        raise PayloadTooLarge(
            f"A batch holds at most {MAX_BATCH_EVENTS} events",
            [field_error(name, f"has {len(value)} events")],
        )
    return value


def build_payload(
    messages: list[Any],
    *,
    is_batch: bool,
    sent_raw: Any,
    sent_ms: int | None,
    body_size: int,
    convert: Callable[[Any], Item | list[FieldError]],
) -> Payload:
    """The payload of converted messages; one too large is an error of its own."""
    check_size = body_size > MAX_EVENT_BYTES
    items: list[Item | list[FieldError]] = []
    for message in messages:
        if check_size and len(orjson.dumps(message)) > MAX_EVENT_BYTES:
            items.append([field_error("event", EVENT_TOO_LARGE)])
        else:
            items.append(convert(message))
    return Payload(None, sent_ms, sent_raw if isinstance(sent_raw, str) else None, is_batch, items)


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def put_text(target: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` to `value` when it is a string and `key` is not set yet."""
    if isinstance(value, str) and key not in target:
        target[key] = value


def screen_size(width: Any, height: Any) -> str | None:
    """ "1280x720", as our SDK sends the screen, from two numbers."""
    if type(width) in (int, float) and type(height) in (int, float):
        return f"{int(width)}x{int(height)}"
    return None
