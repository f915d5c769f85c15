"""Ports the market-data services need; adapters implement them and arrive injected.

Bar frames everywhere share one shape (see :data:`BAR_COLUMNS`): columns ``open high low
close volume`` as float64, indexed by a ``DatetimeIndex`` of bar *open* times in UTC, sorted,
unique, and holding closed bars only. Time ranges are half-open, ``start <= open_at < end``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from quantdesk.core.instruments import Instrument
from quantdesk.core.market import Timeframe

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


class BarArrays(NamedTuple):
    """One series as arrays: int64 UTC-nanosecond open times and a ``(5, n)`` float64 block (BAR_COLUMNS rows)."""

    open_ns: np.ndarray
    values: np.ndarray


@runtime_checkable
class HistoryProvider(Protocol):
    """A source of historical bars (simulated market, imported files, an exchange)."""

    name: str

    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Return every closed bar of ``instrument`` opening in ``[start, end)`` (UTC-aware bounds).

        Must return *all* closed bars of the range (the cache records the range as covered).
        """
        ...

    def search(self, q: str) -> list[Instrument]:
        """Instruments this provider can quote whose symbol or name matches ``q``."""
        ...


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One input row refused by validation: its 1-based data row number (header not counted), raw timestamp, why."""

    row: int
    timestamp: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Outcome of importing a bar file: how many rows were accepted and each rejection with its reason."""

    accepted: int
    rejected: tuple[RejectedRow, ...] = ()
    first_at: datetime | None = None
    last_at: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": [{"row": r.row, "timestamp": r.timestamp, "reason": r.reason} for r in self.rejected],
            "first_at": self.first_at.isoformat() if self.first_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
        }


@runtime_checkable
class BarImporter(Protocol):
    """A provider that can take bars from a user's file (CSV, Parquet)."""

    def load(self, source: object, *, assume_tz: str = "UTC") -> tuple[pd.DataFrame, ImportReport]:
        """Parse and validate ``source``; return the accepted bars and a report of every rejection.

        Raises InvalidInputError for a malformed file (missing columns, unreadable).
        """
        ...


@runtime_checkable
class BarStore(Protocol):
    """Persistent cache of bar frames per (provider, instrument key, timeframe) plus covered ranges."""

    def read(
        self, provider: str, key: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Stored bars opening in ``[start, end)``; an empty frame of the standard shape if none."""
        ...

    def write(
        self,
        provider: str,
        key: str,
        timeframe: Timeframe,
        bars: pd.DataFrame,
        covered: list[tuple[datetime, datetime]] = (),
    ) -> None:
        """Merge ``bars`` into the series (new rows win on equal timestamps) and mark ``covered`` ranges fetched."""
        ...

    def coverage(self, provider: str, key: str, timeframe: Timeframe) -> list[tuple[datetime, datetime]]:
        """Sorted, disjoint half-open ranges already fetched for the series."""
        ...

    def coverage_many(
        self, provider: str, keys: Sequence[str], timeframe: Timeframe
    ) -> dict[str, list[tuple[datetime, datetime]]]:
        """``coverage`` of each key's series, in one call (a key never fetched maps to ``[]``)."""
        ...

    def read_many(
        self, provider: str, keys: Sequence[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, BarArrays]:
        """Stored bars of each key opening in ``[start, end)``, as arrays (empty arrays when none)."""
        ...

    def clear(self) -> None:
        """Forget every stored bar and range."""
        ...


@dataclass(frozen=True, slots=True)
class ImportedInstrument:
    """An instrument a user imported bars for, and the provider whose cache holds them."""

    instrument: Instrument
    provider: str


@runtime_checkable
class InstrumentRegistry(Protocol):
    """Durable record of imported instruments, so they survive a restart (the bars stay in the BarStore)."""

    def save(self, instrument: Instrument, provider: str) -> None:
        """Insert or replace the record of ``instrument`` (by venue, symbol and kind) and its provider."""
        ...

    def load_all(self) -> list[ImportedInstrument]:
        """Every saved instrument, oldest first."""
        ...
