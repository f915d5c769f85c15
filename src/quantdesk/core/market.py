"""Market-data value types: timeframes, bars, ticks and top-of-book."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from quantdesk.core.errors import InvalidInputError


class Timeframe(StrEnum):
    """Bar length. Values are the canonical spellings; ``parse`` accepts the surfaces' others."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def delta(self) -> timedelta:
        return _DELTAS[self]

    @property
    def seconds(self) -> int:
        return int(_DELTAS[self].total_seconds())

    @classmethod
    def parse(cls, value: str, *, field: str = "timeframe") -> Timeframe:
        """Resolve any common spelling (``1h``, ``60m``, ``D``, ``1D``, ``day``) or raise a 4xx error."""
        key = str(value).strip()
        found = _ALIASES.get(key) or _ALIASES.get(key.lower())
        if found is None:
            allowed = ", ".join(t.value for t in cls)
            raise InvalidInputError(
                f"{field} {value!r} is not a supported timeframe; use one of {allowed} (or D for daily)",
                field=field,
            )
        return found


_DELTAS = {
    Timeframe.M1: timedelta(minutes=1),
    Timeframe.M5: timedelta(minutes=5),
    Timeframe.M15: timedelta(minutes=15),
    Timeframe.M30: timedelta(minutes=30),
    Timeframe.H1: timedelta(hours=1),
    Timeframe.H4: timedelta(hours=4),
    Timeframe.D1: timedelta(days=1),
}

_ALIASES: dict[str, Timeframe] = {t.value: t for t in Timeframe}
_ALIASES.update(
    {
        "1min": Timeframe.M1, "1": Timeframe.M1,
        "5min": Timeframe.M5, "5": Timeframe.M5,
        "15min": Timeframe.M15, "15": Timeframe.M15,
        "30min": Timeframe.M30, "30": Timeframe.M30,
        "60m": Timeframe.H1, "60min": Timeframe.H1, "60": Timeframe.H1, "1H": Timeframe.H1,
        "240m": Timeframe.H4, "4H": Timeframe.H4,
        "d": Timeframe.D1, "D": Timeframe.D1, "1D": Timeframe.D1, "day": Timeframe.D1, "daily": Timeframe.D1,
    }
)


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar keyed by its UTC open time; it is complete at ``open_at + timeframe``."""

    open_at: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade print or price update."""

    at: datetime
    price: Decimal
    size: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BookTop:
    """Top levels of an order book: ``bids`` descending, ``asks`` ascending, as (price, size)."""

    at: datetime
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0][0] if self.asks else None
