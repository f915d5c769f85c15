"""Current prices for paper trading: the live feed's last tick, else the last closed 1m bar."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from quantdesk.core.errors import UpstreamUnavailableError
from quantdesk.core.instruments import Instrument
from quantdesk.services.marketdata import MarketDataService


class PriceBoard:
    """Last prices by instrument key.

    A live tick (:meth:`update`) is used for ``live_max_age_s``; without one the close of the
    last closed 1m bar from the market-data service is used and re-read after ``ttl_s``.
    """

    def __init__(self, market: MarketDataService, *, ttl_s: float = 2.0, live_max_age_s: float = 90.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self._market = market
        self._ttl_s = ttl_s
        self._live_max_age_s = live_max_age_s
        self._now = monotonic
        self._live: dict[str, tuple[Decimal, float]] = {}
        self._bars: dict[str, tuple[Decimal, float]] = {}

    def update(self, key: str, price: Decimal) -> None:
        """Record a live tick of the instrument with storage key ``key`` (``BTCUSDT``)."""
        self._live[key] = (price, self._now())

    def cached(self, instrument: Instrument) -> Decimal | None:
        """The current price without I/O, or None when it must be read from bars."""
        now = self._now()
        key = instrument.id.key
        live = self._live.get(key)
        if live is not None and now - live[1] <= self._live_max_age_s:
            return live[0]
        bar = self._bars.get(key)
        if bar is not None and now - bar[1] <= self._ttl_s:
            return bar[0]
        return None

    def load(self, instrument: Instrument) -> Decimal:
        """Read the close of the last closed 1m bar (blocking); UpstreamUnavailableError when there is none."""
        frame = self._market.history(instrument, "1m", limit=1)
        if not len(frame):
            raise UpstreamUnavailableError(f"no recent price for {instrument.symbol}; try again shortly")
        price = instrument.round_price(Decimal(repr(float(frame["close"].iloc[-1]))))
        self._bars[instrument.id.key] = (price, self._now())
        return price

    async def current(self, instrument: Instrument) -> Decimal:
        """The current price of ``instrument`` (bars are read in a worker thread when needed)."""
        price = self.cached(instrument)
        if price is not None:
            return price
        return await asyncio.to_thread(self.load, instrument)
