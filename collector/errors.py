"""The error hierarchy: each class carries its HTTP status; one handler renders them all.

Every error reaching a client has the same shape:
``{"success": false, "message": "...", "errors": [{"field": "...", "message": "..."}]}``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class FieldError(TypedDict):
    field: str
    message: str


class CollectorError(Exception):
    code = "invalid_request"  # a short name for what went wrong, for clients that read one
    status = 400
    default_message = "Invalid request"

    def __init__(
        self,
        message: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"success": False, "message": self.message, "errors": list(self.errors)}


class InvalidRequest(CollectorError):
    code = "invalid_request"
    status = 400
    default_message = "Invalid request"


class Unauthorized(CollectorError):
    code = "unauthorized"
    status = 401
    default_message = "Missing or invalid API key"


class Forbidden(CollectorError):
    code = "forbidden"
    status = 403
    default_message = "Origin not allowed for this app"


class NotFound(CollectorError):
    code = "not_found"
    status = 404
    default_message = "Not found"


class MethodNotAllowed(CollectorError):
    code = "method_not_allowed"
    status = 405
    default_message = "Method not allowed"


class PayloadTooLarge(CollectorError):
    code = "payload_too_large"
    status = 413
    default_message = "Payload too large"


class UnsupportedMediaType(CollectorError):
    code = "unsupported_media_type"
    status = 415
    default_message = "Content-Type must be application/json or text/plain"


class InternalError(CollectorError):
    """An unexpected failure: logged by the server, never detailed to the client."""

    code = "internal_error"
    status = 500
    default_message = "Internal error"


class _RetryLater(CollectorError):
    field = "request"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        errors = [field_error(self.field, f"retry after {retry_after} s")]
        super().__init__(message, errors, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class RateLimited(_RetryLater):
    code = "rate_limited"
    status = 429
    field = "rate_limit"
    default_message = "Rate limit exceeded"


class Unavailable(_RetryLater):
    code = "unavailable"
    status = 503
    field = "queue"
    default_message = "Write queue is full, retry later"


class BacklogFull(Unavailable):
    """A big request while the events accepted but not yet indexed are at their bound
    (SQLite): past it every commit indexes as much as it adds, holding the one write lock
    and the event loop, so the app that sends big batches waits instead of every app."""

    code = "backlog_full"
    default_message = "Indexing is behind, retry later"


class StorageFailed(Unavailable):
    """A group commit failed (the database is unreachable, or errs): nothing of it was
    stored, so the client retries."""

    code = "storage_failed"
    field = "storage"
    default_message = "Storage error, retry later"


class StoreUnavailable(Exception):
    """The database cannot be reached (at start, or by a command). Its message is one
    line that names the database without any password; commands print it as it is."""


def field_error(field: str, message: str) -> FieldError:
    return {"field": field, "message": message}
