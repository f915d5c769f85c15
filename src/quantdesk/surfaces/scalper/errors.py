"""Crypto Scalper error body: ``{"error": {"code", "message", "details"}, "request_id"}``."""

from __future__ import annotations

from typing import Any

from quantdesk.core.errors import QuantdeskError, RateLimitedError
from quantdesk.surfaces.shared.errors import ErrorFormat

PREFIXES = ("/api/v1", "/ws")


def render(err: QuantdeskError, request_id: str) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"code": err.code, "message": err.message, "details": err.details}
    if isinstance(err, RateLimitedError):
        error["retry_after"] = err.retry_after
    return err.status, {"error": error, "request_id": request_id}


FORMAT = ErrorFormat("scalper", render)
