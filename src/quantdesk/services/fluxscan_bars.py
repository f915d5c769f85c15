"""Bars for scans: the last ``lookback`` bars of many symbols, packed as one ScanBars.

Every scan reads through :meth:`MarketDataService.lookback_batch`, which computes the
lookback start once per venue and reads the cached series in bulk (2,000 daily series in a
few hundred milliseconds), so there is no memory layer here: a scan always sees the cache
as it is, right after a cache clear or a file import too.
"""

from __future__ import annotations

from collections.abc import Sequence

from quantdesk.core.market import Timeframe
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.scanner_code import ScanBars


class ScanBarsLoader:
    """Load and pack bars of many symbols through the market-data service."""

    def __init__(self, market: MarketDataService):
        self.market = market

    def load(self, symbols: Sequence[str], exchange: str, timeframe: Timeframe,
             lookback: int) -> tuple[ScanBars, dict[str, str]]:
        """Bars of ``symbols`` (those that loaded, in order) and an error message per symbol that did not."""
        batch = self.market.lookback_batch(symbols, timeframe, lookback, exchange=exchange)
        errors = {sym: exc.message for sym, exc in batch.errors.items()}
        return ScanBars(batch.symbols, batch.open_ns, batch.values, batch.offsets), errors
