"""Market-data use cases: bars for any symbol through a read-through Parquet cache.

The HTTP layers call :class:`MarketDataService`; it resolves the symbol in the catalogue,
asks the provider only for the ranges the cache has not yet covered, merges and persists
them, and answers from the cache. Frames have the standard shape of
:mod:`quantdesk.services.ports` (float64 ``open high low close volume``, UTC ``open_at``
index, closed bars only); ranges are half-open, ``start <= open_at < end``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd

from quantdesk.core.clock import Clock
from quantdesk.core.errors import ConfigError, InvalidInputError
from quantdesk.core.instruments import Instrument, InstrumentKind, Venue, parse_symbol
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import SessionRules, crypto_rules, lookback_start, nse_rules
from quantdesk.services.catalog import InstrumentCatalog, parse_venue
from quantdesk.services.ports import BarImporter, BarStore, HistoryProvider, ImportReport

DEFAULT_LOOKBACK = 500
MAX_LOOKBACK = 100_000
MAX_RANGE_BARS = 1_100_000  # about two years of 1m bars; a wider request must be split
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def parse_when(value: datetime | date | str | None, *, field: str) -> datetime | None:
    """Read a request's time bound: aware datetime, ISO text (``Z`` or offset; none means UTC) or a date.

    Naive datetime objects are refused (InvalidInputError naming ``field``); a bare date
    means 00:00 UTC of that day.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(f"{field} {value.isoformat()} must carry a timezone", field=field)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{field} {value!r} is not an ISO date or datetime (e.g. 2025-01-01T00:00:00Z)", field=field
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class MarketDataService:
    """Read-through bar cache over pluggable history providers.

    ``providers`` maps a provider name (``"sim"``, ``"file"``, ``"ccxt"``) to a
    HistoryProvider; ``default_provider`` serves every instrument not imported from a file.
    ``sessions`` gives each venue's rules (for lookbacks); ``clock`` is a core Clock (or a
    callable) giving aware UTC now.
    """

    def __init__(
        self,
        catalog: InstrumentCatalog,
        store: BarStore,
        providers: Mapping[str, HistoryProvider],
        *,
        default_provider: str = "sim",
        sessions: Mapping[Venue, SessionRules] | None = None,
        clock: Clock | Callable[[], datetime] = _wall_clock,
        venue_providers: Mapping[Venue, str] | None = None,
    ):
        if default_provider not in providers:
            raise ConfigError(
                f"default market-data provider {default_provider!r} is not among {sorted(providers)}"
            )
        self.catalog = catalog
        self.store = store
        self.providers = dict(providers)
        self.default_provider = default_provider
        self.venue_providers = dict(venue_providers or {})
        for venue, name in self.venue_providers.items():
            if name not in providers:
                raise ConfigError(f"market-data provider {name!r} for {venue.value} is not among {sorted(providers)}")
        self.sessions = dict(sessions or {Venue.CRYPTO: crypto_rules(), Venue.NSE: nse_rules()})
        self._clock = clock.now if isinstance(clock, Clock) else clock
        self._imported: dict[str, str] = {}  # instrument key -> provider holding its imported bars
        self._series_locks: dict[tuple[str, str, Timeframe], threading.Lock] = {}
        self._guard = threading.Lock()

    # ---- queries -----------------------------------------------------------------------
    def history(
        self,
        symbol: str | Instrument,
        timeframe: Timeframe | str,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        *,
        exchange: str | Venue | None = None,
        provider: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Bars of ``symbol`` opening in ``[start, end)``; missing ranges are fetched once and cached.

        ``end`` defaults to now, ``start`` to ``DEFAULT_LOOKBACK`` bars before ``end``;
        ``limit`` keeps the last ``limit`` bars. Raises NotFoundError for an unknown symbol,
        InvalidInputError naming the field for a bad timeframe, bound, ``start > end`` or limit.
        """
        instrument = self._instrument(symbol, exchange)
        tf = Timeframe(timeframe) if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
        if limit is not None and not (0 < int(limit) <= MAX_LOOKBACK):
            raise InvalidInputError(f"limit {limit} must be between 1 and {MAX_LOOKBACK}", field="limit")
        now = self._now()
        end_at = parse_when(end, field="end") or now
        start_at = parse_when(start, field="start")
        if start_at is None:
            start_at = lookback_start(self._rules(instrument), tf, end_at, limit or DEFAULT_LOOKBACK)
        if start_at > end_at:
            raise InvalidInputError(
                f"start {start_at.isoformat()} is after end {end_at.isoformat()}; start must be at or before end",
                field="start",
                details={"start": start_at.isoformat(), "end": end_at.isoformat()},
            )
        span = (min(end_at, now) - start_at) / tf.delta
        if span > MAX_RANGE_BARS:
            raise InvalidInputError(
                f"the range {start_at.isoformat()} to {end_at.isoformat()} spans about {int(span):,} {tf.value} bars; "
                f"ask for at most {MAX_RANGE_BARS:,} at a time (narrow start/end or use a coarser timeframe)",
                field="start",
            )
        frame = self._read_through(instrument, tf, start_at, end_at, now, provider)
        return frame.iloc[-int(limit) :] if limit else frame

    def history_lookback(
        self,
        symbol: str | Instrument,
        timeframe: Timeframe | str,
        lookback: int,
        *,
        exchange: str | Venue | None = None,
        end: datetime | date | str | None = None,
        provider: str | None = None,
    ) -> pd.DataFrame:
        """The last ``lookback`` closed bars before ``end`` (default now), as FluxScan's ``lookback`` asks."""
        try:
            count = int(lookback)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"lookback {lookback!r} must be a whole number", field="lookback"
            ) from None
        if not 0 < count <= MAX_LOOKBACK:
            raise InvalidInputError(
                f"lookback {lookback} must be between 1 and {MAX_LOOKBACK}", field="lookback"
            )
        instrument = self._instrument(symbol, exchange)
        tf = (
            Timeframe(timeframe)
            if isinstance(timeframe, Timeframe)
            else Timeframe.parse(timeframe, field="interval")
        )
        end_at = parse_when(end, field="end") or self._now()
        imported = provider or self._imported.get(instrument.id.key)
        if imported and imported not in (self.default_provider, *self.venue_providers.values()):
            # a user's file ends when it ends: its last bars, however old, are the lookback
            frame = self.store.read(imported, instrument.id.key, tf, _EPOCH, end_at)
            return frame.iloc[-count:]
        start_at = lookback_start(self._rules(instrument), tf, end_at, count)
        return self.history(instrument, tf, start_at, end_at, provider=provider).iloc[-count:]

    def resolve(self, symbol: str, exchange: str | Venue | None = None) -> Instrument:
        """The instrument ``symbol`` names (any spelling); NotFoundError names the symbol if unknown."""
        return self.catalog.resolve(symbol, exchange)

    def search_symbols(
        self, q: str, exchange: str | Venue | None = None, *, limit: int = 50
    ) -> list[Instrument]:
        """Catalogue search by symbol or name prefix/substring (``q=RELI, exchange=NSE`` finds RELIANCE)."""
        return self.catalog.search(q, exchange, limit=limit)

    def validate_symbol(self, symbol: str, exchange: str | Venue | None = None) -> bool:
        """Whether ``symbol`` exists on ``exchange`` (any venue when None)."""
        return self.catalog.exists(symbol, exchange)

    def list_symbols(
        self, exchange: str | Venue | None = None, kind: InstrumentKind | str | None = None
    ) -> list[Instrument]:
        """Every catalogued instrument, optionally of one venue and kind."""
        return self.catalog.all(exchange, InstrumentKind(kind) if kind else None)

    # ---- commands ----------------------------------------------------------------------
    def import_bars(
        self,
        source: object,
        symbol: str,
        timeframe: Timeframe | str,
        *,
        exchange: str | Venue | None = None,
        name: str | None = None,
        importer: str = "file",
        assume_tz: str = "UTC",
    ) -> ImportReport:
        """Import a user's CSV/Parquet bar file for ``symbol`` and cache the accepted rows.

        Unknown symbols are added to the catalogue (equity on a stock venue, else a crypto
        spot pair). Returns the report of accepted and rejected rows; a malformed file raises
        InvalidInputError and caches nothing.
        """
        loader = self.providers.get(importer)
        if not isinstance(loader, BarImporter):
            raise ConfigError(f"market-data provider {importer!r} cannot import files")
        tf = Timeframe(timeframe) if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
        frame, report = loader.load(source, assume_tz=assume_tz)
        instrument = self._instrument_for_import(symbol, exchange, name)
        if report.accepted:
            last = frame.index[-1].to_pydatetime()
            covered = [(frame.index[0].to_pydatetime(), last + tf.delta)]
            with self._series_lock(importer, instrument.id.key, tf):
                self.store.write(importer, instrument.id.key, tf, frame, covered)
            self._imported[instrument.id.key] = importer
        return report

    def clear(self) -> None:
        """Empty the bar cache (every provider, instrument and timeframe)."""
        self.store.clear()

    # ---- internals ---------------------------------------------------------------------
    def _read_through(
        self,
        instrument: Instrument,
        tf: Timeframe,
        start: datetime,
        end: datetime,
        now: datetime,
        provider_name: str | None,
    ) -> pd.DataFrame:
        name = (
            provider_name
            or self._imported.get(instrument.id.key)
            or self.venue_providers.get(instrument.id.venue)
            or self.default_provider
        )
        provider = self.providers.get(name)
        if provider is None:
            raise InvalidInputError(
                f"provider {name!r} is unknown; use one of {sorted(self.providers)}", field="provider"
            )
        key = instrument.id.key
        with self._series_lock(name, key, tf):
            upper = min(end, now)
            for gap_start, gap_end in _missing(self.store.coverage(name, key, tf), start, upper):
                bars = provider.history(instrument, tf, gap_start, gap_end)
                # Only bars closed by now exist; record as covered just what cannot change later:
                # everything before now - timeframe, and up to the newest bar the provider returned.
                safe_end = min(gap_end, now - tf.delta)
                if len(bars):
                    safe_end = max(safe_end, min(gap_end, bars.index[-1].to_pydatetime() + _TICK))
                covered = [(gap_start, safe_end)] if safe_end > gap_start else []
                if len(bars) or covered:
                    self.store.write(name, key, tf, bars, covered)
            return self.store.read(name, key, tf, start, end)

    def _instrument(self, symbol: str | Instrument, exchange: str | Venue | None) -> Instrument:
        if isinstance(symbol, Instrument):
            return symbol
        return self.catalog.resolve(symbol, exchange)

    def _instrument_for_import(
        self, symbol: str, exchange: str | Venue | None, name: str | None
    ) -> Instrument:
        venue = parse_venue(exchange)
        if self.catalog.exists(symbol, venue):
            return self.catalog.resolve(symbol, venue)
        iid = parse_symbol(symbol, venue=venue)
        crypto = iid.venue == Venue.CRYPTO
        instrument = Instrument(
            id=iid,
            kind=InstrumentKind.SPOT if crypto else InstrumentKind.EQUITY,
            name=name or iid.spell("slash"),
            currency=(iid.quote or "USDT") if crypto else "INR",
            tick_size=Decimal("0.01") if crypto else Decimal("0.05"),
            lot_size=Decimal("0.000001") if crypto else Decimal(1),
            sector="Imported",
        )
        return self.catalog.add(instrument)

    def _rules(self, instrument: Instrument) -> SessionRules:
        venue = instrument.id.venue
        return (
            self.sessions.get(venue)
            or self.sessions.get(Venue.NSE if venue == Venue.BSE else venue)
            or crypto_rules()
        )

    def _series_lock(self, provider: str, key: str, tf: Timeframe) -> threading.Lock:
        with self._guard:
            return self._series_locks.setdefault((provider, key, tf), threading.Lock())

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ConfigError("the market-data clock returned a naive datetime")
        return now.astimezone(UTC)


def _missing(
    covered: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Parts of ``[start, end)`` outside the sorted, disjoint ``covered`` ranges."""
    gaps: list[tuple[datetime, datetime]] = []
    cursor = start
    for a, b in covered:
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            gaps.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps
