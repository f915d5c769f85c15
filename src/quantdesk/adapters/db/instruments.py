"""SQLAlchemy implementation of the InstrumentRegistry port (imported instruments survive restarts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, delete, insert, select

from quantdesk.adapters.db.instrument_tables import imported_instruments as table
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.services.ports import ImportedInstrument


class SqlInstrumentRegistry:
    """Imported instruments in the ``imported_instruments`` table, one row per (instrument key, kind)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._engine = engine
        self._now = now

    def save(self, instrument: Instrument, provider: str) -> None:
        """Insert or replace the row of ``instrument`` (one transaction)."""
        key, kind = instrument.id.key, instrument.kind.value
        with self._engine.begin() as conn:
            conn.execute(delete(table).where(table.c.instrument_key == key, table.c.kind == kind))
            conn.execute(insert(table).values(
                instrument_key=key, kind=kind, venue=instrument.id.venue.value, base=instrument.id.base,
                quote=instrument.id.quote, name=instrument.name, currency=instrument.currency,
                tick_size=str(instrument.tick_size), lot_size=str(instrument.lot_size),
                min_notional=str(instrument.min_notional), max_leverage=instrument.max_leverage,
                sector=instrument.sector, provider=provider, imported_at=self._now(),
            ))

    def load_all(self) -> list[ImportedInstrument]:
        """Every saved instrument, oldest import first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.imported_at, table.c.instrument_key)).all()
        return [
            ImportedInstrument(
                Instrument(
                    id=InstrumentId(Venue(r.venue), r.base, r.quote), kind=InstrumentKind(r.kind), name=r.name,
                    currency=r.currency, tick_size=Decimal(r.tick_size), lot_size=Decimal(r.lot_size),
                    min_notional=Decimal(r.min_notional), max_leverage=r.max_leverage, sector=r.sector,
                ),
                r.provider,
            )
            for r in rows
        ]
