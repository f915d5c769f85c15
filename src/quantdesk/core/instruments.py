"""Instruments and symbol spellings.

Every spelling a surface uses (``BTCUSDT``, ``BTC/USDT``, ``BTC_USDT``, ``btc-usdt``) resolves
to one :class:`InstrumentId`; each surface renders it back in its reference's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from quantdesk.core.errors import InvalidInputError

# Quote assets recognised when a crypto symbol is written without a separator (BTCUSDT).
QUOTE_ASSETS = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "BTC", "ETH", "BNB", "EUR", "INR")


class InstrumentKind(StrEnum):
    EQUITY = "equity"
    SPOT = "spot"
    PERPETUAL = "perpetual"
    INDEX = "index"


class Venue(StrEnum):
    NSE = "NSE"
    BSE = "BSE"
    CRYPTO = "CRYPTO"


@dataclass(frozen=True, slots=True)
class InstrumentId:
    """Canonical identity: ``base``/``quote`` for crypto pairs, ``base`` alone for equities."""

    venue: Venue
    base: str
    quote: str | None = None

    @property
    def key(self) -> str:
        """Stable storage key: ``BTCUSDT``, ``NSE:RELIANCE``."""
        if self.quote:
            return f"{self.base}{self.quote}"
        return f"{self.venue.value}:{self.base}"

    def spell(self, style: str) -> str:
        """Render for a surface: ``concat`` BTCUSDT, ``slash`` BTC/USDT, ``underscore`` BTC_USDT."""
        if not self.quote:
            return self.base
        sep = {"concat": "", "slash": "/", "underscore": "_"}[style]
        return f"{self.base}{sep}{self.quote}"

    def __str__(self) -> str:
        return self.key


def parse_symbol(text: str, *, field: str = "symbol", venue: Venue | None = None) -> InstrumentId:
    """Parse any common spelling into an id; crypto unless it has no known quote or a stock venue is given.

    Raises InvalidInputError naming ``field`` for empty or malformed text. Whether the
    instrument exists is the catalogue's question, not this function's.
    """
    raw = (text or "").strip().upper()
    if not raw:
        raise InvalidInputError(f"{field} is required", field=field)
    prefix, colon, rest = raw.partition(":")
    if colon and prefix in Venue.__members__:
        venue, raw = Venue(prefix), rest
    elif colon:
        raw = prefix  # ccxt's perpetual spelling BTC/USDT:USDT
    for sep in ("/", "_", "-"):
        if sep in raw and venue not in (Venue.NSE, Venue.BSE):
            base, _, quote = raw.partition(sep)
            if quote not in QUOTE_ASSETS:
                continue  # an NSE name such as BAJAJ-AUTO
            if not base.isalnum():
                raise InvalidInputError(f"{field} {text!r} is not a valid symbol", field=field)
            return InstrumentId(Venue.CRYPTO, base, quote)
    if not all(c.isalnum() or c in "&-." for c in raw):
        raise InvalidInputError(f"{field} {text!r} is not a valid symbol", field=field)
    if venue in (Venue.NSE, Venue.BSE):
        return InstrumentId(venue, raw)
    for quote in QUOTE_ASSETS:
        if raw.endswith(quote) and len(raw) > len(quote):
            return InstrumentId(Venue.CRYPTO, raw[: -len(quote)], quote)
    return InstrumentId(venue or Venue.NSE, raw)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable thing and its precision rules; the authority on rounding prices and quantities."""

    id: InstrumentId
    kind: InstrumentKind
    name: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal = Decimal(0)
    max_leverage: int = 1
    sector: str | None = None

    @property
    def symbol(self) -> str:
        return self.id.base if not self.id.quote else self.id.spell("concat")

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """Round ``price`` to a multiple of ``tick_size``."""
        ticks = (price / self.tick_size).to_integral_value(rounding=rounding)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def round_quantity(self, quantity: Decimal, rounding: str = ROUND_DOWN) -> Decimal:
        """Round ``quantity`` down (by default) to a multiple of ``lot_size``."""
        lots = (quantity / self.lot_size).to_integral_value(rounding=rounding)
        return (lots * self.lot_size).quantize(self.lot_size)
