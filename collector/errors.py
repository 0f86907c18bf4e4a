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
    status = 400
    default_message = "Invalid request"


class Unauthorized(CollectorError):
    status = 401
    default_message = "Missing or invalid API key"


class Forbidden(CollectorError):
    status = 403
    default_message = "Origin not allowed for this app"


class NotFound(CollectorError):
    status = 404
    default_message = "Not found"


class MethodNotAllowed(CollectorError):
    status = 405
    default_message = "Method not allowed"


class PayloadTooLarge(CollectorError):
    status = 413
    default_message = "Payload too large"


class UnsupportedMediaType(CollectorError):
    status = 415
    default_message = "Content-Type must be application/json or text/plain"


class InternalError(CollectorError):
    """An unexpected failure: logged by the server, never detailed to the client."""

    status = 500
    default_message = "Internal error"


class _RetryLater(CollectorError):
    field = "request"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        errors = [field_error(self.field, f"retry after {retry_after} s")]
        super().__init__(message, errors, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class RateLimited(_RetryLater):
    status = 429
    field = "rate_limit"
    default_message = "Rate limit exceeded"


class Unavailable(_RetryLater):
    status = 503
    field = "queue"
    default_message = "Write queue is full, retry later"


class StorageFailed(Unavailable):
    """A group commit failed (the database is unreachable, or errs): nothing of it was
    stored, so the client retries."""

    field = "storage"
    default_message = "Storage error, retry later"


class StoreUnavailable(Exception):
    """The database cannot be reached (at start, or by a command). Its message is one
    line that names the database without any password; commands print it as it is."""


def field_error(field: str, message: str) -> FieldError:
    return {"field": field, "message": message}
