"""The one exception tree of quantdesk.

Every error carries a stable ``code`` (UPPER_SNAKE), a human ``message`` that names the
field, the value seen and what would be accepted, and structured ``details``. Errors are
grouped by how a caller should react; each API surface maps the tree to its own body.
"""

from __future__ import annotations

from typing import Any


class QuantdeskError(Exception):
    """Base of every error quantdesk raises on purpose."""

    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidInputError(QuantdeskError):
    """The caller sent something malformed or out of bounds; fix the input and retry."""

    code = "VALIDATION_ERROR"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
    ):
        details = dict(details or {})
        if field is not None:
            details.setdefault("field", field)
        super().__init__(message, code=code, details=details)
        self.field = field
        # field -> message, for surfaces that report several fields at once
        self.errors: dict[str, str] = dict(errors or ({field: message} if field else {}))


class PayloadTooLargeError(InvalidInputError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class UnsupportedMediaError(InvalidInputError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class NotFoundError(QuantdeskError):
    """The named resource does not exist (or is not visible to this caller)."""

    code = "NOT_FOUND"
    status = 404

    def __init__(self, resource: str, identifier: Any = None, *, message: str | None = None, code: str | None = None):
        msg = message or (f"{resource} {identifier!r} not found" if identifier is not None else f"{resource} not found")
        super().__init__(msg, code=code, details={"resource": resource, "id": identifier})
        self.resource = resource
        self.identifier = identifier


class ConflictError(QuantdeskError):
    """The current state forbids the operation (e.g. the strategy is running)."""

    code = "CONFLICT"
    status = 409


class AuthenticationError(QuantdeskError):
    """No credentials, or credentials that are invalid, expired or revoked."""

    code = "UNAUTHORIZED"
    status = 401


class ForbiddenError(QuantdeskError):
    """Authenticated, but not allowed to do this."""

    code = "FORBIDDEN"
    status = 403


class CsrfError(ForbiddenError):
    code = "CSRF_FAILED"
    status = 403


class RateLimitedError(QuantdeskError):
    """Too many requests for this credential and category; retry after ``retry_after`` seconds."""

    code = "RATE_LIMITED"
    status = 429

    def __init__(self, retry_after: int, *, limit: int, reset_at_s: int):
        super().__init__(
            f"Rate limit exceeded. Retry after {retry_after} seconds.",
            details={"retry_after": retry_after},
        )
        self.retry_after = retry_after
        self.limit = limit
        self.reset_at_s = reset_at_s


class OrderRejectedError(QuantdeskError):
    """The order was refused (by risk, margin or the venue); ``code`` says why."""

    code = "ORDER_REJECTED"
    status = 400


class InsufficientBalanceError(OrderRejectedError):
    code = "INSUFFICIENT_BALANCE"
    status = 400


class UpstreamUnavailableError(QuantdeskError):
    """An exchange, broker or data source failed; the call may succeed later."""

    code = "EXCHANGE_ERROR"
    status = 502


class UserCodeError(QuantdeskError):
    """User-written code (scanner, strategy) failed validation or at run time."""

    code = "USER_CODE_ERROR"
    status = 400


class ConfigError(QuantdeskError):
    """A setting is invalid; start-up stops with one line naming it."""

    code = "CONFIG_ERROR"
    status = 500
