"""FluxScan error bodies: ``{"error": ...}`` with ``errors`` for validation, ``resource``/``id`` for 404."""

from __future__ import annotations

from typing import Any

from quantdesk.core.errors import InvalidInputError, NotFoundError, QuantdeskError
from quantdesk.surfaces.shared.errors import ErrorFormat

PREFIXES = (
    "/api/scanners", "/api/watchlists", "/scan/api", "/api/results", "/api/schedules", "/api/symbols",
    "/api/data", "/api/settings", "/api/stats", "/api/cache",
)


def render(err: QuantdeskError, request_id: str) -> tuple[int, dict[str, Any]]:
    if isinstance(err, InvalidInputError) and err.status == 400:
        return 400, {"error": "Validation failed", "errors": err.errors or {"request": err.message},
                     "message": err.message}
    if isinstance(err, NotFoundError):
        return 404, {"error": "Resource not found", "resource": err.resource, "id": err.identifier,
                     "message": err.message}
    body: dict[str, Any] = {"error": err.message, "code": err.code}
    if err.code == "RATE_LIMITED":
        body["retry_after"] = err.details.get("retry_after")
    return err.status, body


FORMAT = ErrorFormat("fluxscan", render)
