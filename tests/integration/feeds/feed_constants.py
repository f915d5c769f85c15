"""Constants shared by the feed adapter tests."""

from datetime import UTC, datetime
from decimal import Decimal

from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue

NOW = datetime(2025, 11, 5, 12, 34, 56, tzinfo=UTC)  # Wednesday, after the NSE close (11:00 IST + ...)

BTC_SPOT = Instrument(
    InstrumentId(Venue.CRYPTO, "BTC", "USDT"),
    InstrumentKind.SPOT,
    "Bitcoin",
    "USDT",
    Decimal("0.01"),
    Decimal("0.00001"),
)
BTC_PERP = Instrument(
    InstrumentId(Venue.CRYPTO, "BTC", "USDT"),
    InstrumentKind.PERPETUAL,
    "Bitcoin perpetual",
    "USDT",
    Decimal("0.1"),
    Decimal("0.001"),
)
DOGE_SPOT = Instrument(
    InstrumentId(Venue.CRYPTO, "DOGE", "USDT"),
    InstrumentKind.SPOT,
    "Dogecoin",
    "USDT",
    Decimal("0.00001"),
    Decimal(1),
)
RELIANCE = Instrument(
    InstrumentId(Venue.NSE, "RELIANCE"),
    InstrumentKind.EQUITY,
    "Reliance Industries Ltd",
    "INR",
    Decimal("0.05"),
    Decimal(1),
)
NOSUCH = Instrument(
    InstrumentId(Venue.NSE, "NOSUCHCO"),
    InstrumentKind.EQUITY,
    "No such company",
    "INR",
    Decimal("0.05"),
    Decimal(1),
)
NIFTY = Instrument(
    InstrumentId(Venue.NSE, "NIFTY"), InstrumentKind.INDEX, "NIFTY 50", "INR", Decimal("0.05"), Decimal(1)
)
OPENALGO_KEY = "oa-key-5f3c9e"
