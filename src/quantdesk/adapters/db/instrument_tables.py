"""Instruments users imported bars for (their bars stay in the Parquet cache; this keeps the symbol)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

# Precision values are decimal text, not the Money type: Money normalises on read and the
# exponent of tick_size / lot_size is the instrument's precision (0.10 must stay 0.10).
imported_instruments = Table(
    "imported_instruments",
    metadata,
    Column("instrument_key", String(64), primary_key=True),  # InstrumentId.key: NSE:MYSTOCK, MYTOKENUSDT
    Column("kind", String(16), primary_key=True),
    Column("venue", String(16), nullable=False),
    Column("base", String(64), nullable=False),
    Column("quote", String(16), nullable=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("tick_size", String(64), nullable=False),
    Column("lot_size", String(64), nullable=False),
    Column("min_notional", String(64), nullable=False),
    Column("max_leverage", Integer, nullable=False),
    Column("sector", String(64), nullable=True),
    Column("provider", String(32), nullable=False),  # the provider whose cache holds the imported bars
    Column("imported_at", UtcDateTime, nullable=False),
)
