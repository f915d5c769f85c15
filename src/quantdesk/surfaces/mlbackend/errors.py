"""ML backend error body: ``{"detail"}``."""

from __future__ import annotations

from quantdesk.surfaces.shared.errors import DETAIL_FORMAT

PREFIXES = (
    "/api/keys", "/api/market", "/api/models", "/api/predictions", "/api/backtests", "/api/strategies",
    "/api/system", "/portfolio",
)

FORMAT = DETAIL_FORMAT
