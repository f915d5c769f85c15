"""Breakout bot error body: ``{"detail", "status_code"}`` (validation 422, as documented)."""

from __future__ import annotations

from quantdesk.surfaces.shared.errors import detail_format

PREFIXES = (
    "/api/engine", "/api/positions", "/api/orders", "/api/presets", "/api/scanner", "/api/performance",
    "/api/metrics",
)

FORMAT = detail_format("breakout", include_status=True, validation_status=422)
