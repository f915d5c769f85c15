"""Errors raised by the SDK, carrying the server's code, message, details and request id."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 request_id: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.request_id = request_id


class RateLimited(ApiError):
    def __init__(self, *args: Any, retry_after: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after
