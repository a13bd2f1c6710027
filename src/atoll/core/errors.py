"""Atoll's own exceptions. Adapters translate foreign errors into these at the edge."""

from __future__ import annotations


class AtollError(Exception):
    """Base class for every error Atoll raises on purpose."""

    #: HTTP status the API maps this error to.
    status: int = 500
    #: Short machine-readable code, stable across releases.
    code: str = "internal"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        out = {"error": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class InvalidInput(AtollError):
    """The payload or request is malformed or violates the schema."""

    status = 400
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "payload_too_large"


class Unauthenticated(AtollError):
    status = 401
    code = "unauthenticated"


class Forbidden(AtollError):
    status = 403
    code = "forbidden"


class NotFound(AtollError):
    status = 404
    code = "not_found"


class Conflict(AtollError):
    status = 409
    code = "conflict"


class RateLimited(AtollError):
    """Over a rate limit; ``retry_after`` seconds until the sender may try again."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class Unavailable(AtollError):
    """A backend (store, bus, broker) cannot take the request right now. ``retry_after``
    (seconds), when given, is how soon a retry may succeed (HTTP ``Retry-After``)."""

    status = 503
    code = "unavailable"

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class StorageFull(InvalidInput):
    """Telemetry of a tenant that holds as many points as its storage quota allows. A refused
    message like an invalid one (counted per device and reason, ``storage_quota``; an MQTT
    device moves past it), answered 403 over HTTP."""

    status = 403
    code = "quota_exceeded"


class QuotaExceeded(AtollError):
    """A tenant is at one of its quotas (devices, API keys): making one more is refused."""

    status = 403
    code = "quota_exceeded"
