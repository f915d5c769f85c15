"""Python Strategies error body: ``{"success": false, "message", "error_code"}``."""

from __future__ import annotations

from typing import Any

from quantdesk.core.errors import QuantdeskError
from quantdesk.surfaces.shared.errors import ErrorFormat

PREFIXES = ("/python",)


def render(err: QuantdeskError, request_id: str) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"success": False, "message": err.message, "error_code": err.code}
    if err.code == "RATE_LIMITED":
        body["retry_after"] = err.details.get("retry_after")
    return err.status, body


FORMAT = ErrorFormat("pystrategies", render)
