"""Market-data use cases: bars for any symbol through a read-through Parquet cache.

The HTTP layers call :class:`MarketDataService`; it resolves the symbol in the catalogue,
asks the provider only for the ranges the cache has not yet covered, merges and persists
them, and answers from the cache. Frames have the standard shape of
:mod:`quantdesk.services.ports` (float64 ``open high low close volume``, UTC ``open_at``
index, closed bars only); ranges are half-open, ``start <= open_at < end``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from quantdesk.core.clock import Clock
from quantdesk.core.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError, QuantdeskError
from quantdesk.core.instruments import Instrument, InstrumentKind, Venue, parse_symbol
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import (
    SessionRules,
    bar_bounds_of_day,
    bar_close_at,
    crypto_rules,
    lookback_start,
    nse_rules,
    settled_bars,
)
from quantdesk.services.catalog import InstrumentCatalog, parse_venue
from quantdesk.services.ports import (
    BAR_COLUMNS,
    BarArrays,
    BarImporter,
    BarStore,
    HistoryProvider,
    ImportReport,
    InstrumentRegistry,
)

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK = 500
MAX_LOOKBACK = 100_000
MAX_RANGE_BARS = 1_100_000  # about two years of 1m bars; a wider request must be split
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_STARTS = 4096  # remembered lookback starts (per venue, timeframe, count and position in the day)
_FILL_THREADS = 4  # providers fetching gaps of a batch at once (network-bound providers gain most)


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


@dataclass(frozen=True, slots=True)
class LookbackBatch:
    """The last bars of many symbols, packed: symbol ``i`` owns columns ``offsets[i]:offsets[i+1]``.

    ``values`` is ``(5, N)`` float64 with rows in BAR_COLUMNS order and ``open_ns`` the UTC
    nanosecond open times (the layout of FluxScan's ScanBars). ``symbols`` are the requested
    spellings that loaded, in request order; ``errors`` maps every symbol that did not to its
    error (NotFoundError for an unknown symbol, a provider's error for a failed fetch).
    """

    symbols: tuple[str, ...]
    open_ns: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    errors: dict[str, QuantdeskError]

    def frame(self, i: int) -> pd.DataFrame:
        """Symbol ``i``'s bars in the standard frame shape (a copy)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        index = pd.DatetimeIndex(self.open_ns[a:b].view("datetime64[ns]"), name="open_at").tz_localize(UTC)
        return pd.DataFrame({c: self.values[j, a:b].copy() for j, c in enumerate(BAR_COLUMNS)}, index=index)


class MarketDataService:
    """Read-through bar cache over pluggable history providers.

    ``providers`` maps a provider name (``"sim"``, ``"file"``, ``"ccxt"``) to a
    HistoryProvider; ``default_provider`` serves every instrument not imported from a file.
    ``sessions`` gives each venue's rules (for lookbacks); ``clock`` is a core Clock (or a
    callable) giving aware UTC now. ``registry``, when given, keeps imported instruments
    (and which provider holds their bars) across restarts; they are re-registered here.
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
        registry: InstrumentRegistry | None = None,
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
        self._starts: dict[tuple, datetime] = {}
        self._settled_cache: dict[tuple, tuple] = {}
        self.registry = registry
        if registry is not None:
            self._restore_imports(registry)

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
            start_at = self._lookback_start(instrument, tf, end_at, limit or DEFAULT_LOOKBACK)
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
        count = _lookback_count(lookback)
        instrument = self._instrument(symbol, exchange)
        tf = _interval(timeframe)
        end_at = parse_when(end, field="end") or self._now()
        imported = provider or self._imported.get(instrument.id.key)
        if imported and imported not in (self.default_provider, *self.venue_providers.values()):
            # a user's file ends when it ends: its last bars, however old, are the lookback
            frame = self.store.read(imported, instrument.id.key, tf, _EPOCH, end_at)
            return frame.iloc[-count:]
        start_at = self._lookback_start(instrument, tf, end_at, count)
        return self.history(instrument, tf, start_at, end_at, provider=provider).iloc[-count:]

    def history_lookback_many(
        self,
        symbols: Iterable[str],
        timeframe: Timeframe | str,
        lookback: int,
        *,
        exchange: str | Venue | None = None,
        end: datetime | date | str | None = None,
    ) -> dict[str, pd.DataFrame]:
        """``history_lookback`` of each symbol, read in bulk; the same frames, keyed by the spelling asked.

        Raises NotFoundError naming every unknown symbol (nothing is returned then), else the
        first other per-symbol error; :meth:`lookback_batch` reports errors per symbol instead.
        """
        batch = self.lookback_batch(symbols, timeframe, lookback, exchange=exchange, end=end)
        unknown = [s for s, e in batch.errors.items() if isinstance(e, NotFoundError)]
        if unknown:
            raise NotFoundError("symbol", ", ".join(unknown), code="SYMBOL_NOT_FOUND",
                                message=f"symbol(s) not found: {', '.join(unknown)}")
        if batch.errors:
            raise next(iter(batch.errors.values()))
        return {sym: batch.frame(i) for i, sym in enumerate(batch.symbols)}

    def lookback_batch(
        self,
        symbols: Iterable[str],
        timeframe: Timeframe | str,
        lookback: int,
        *,
        exchange: str | Venue | None = None,
        end: datetime | date | str | None = None,
    ) -> LookbackBatch:
        """The last ``lookback`` bars of many symbols, packed, with an error per symbol that failed.

        Each symbol gets exactly what ``history_lookback`` returns, at a fraction of the cost:
        the lookback start is computed once per venue, only series whose coverage lacks part
        of the range ask their provider (on a few threads), and the cached series are read in
        bulk. A bad ``timeframe``, ``lookback`` or ``end`` raises InvalidInputError for all.
        """
        symbols = list(symbols)
        count = _lookback_count(lookback)
        tf = _interval(timeframe)
        now = self._now()
        end_at = parse_when(end, field="end") or now
        errors: dict[str, QuantdeskError] = {}
        groups: dict[tuple[str, datetime, bool], list[tuple[str, Instrument]]] = {}
        for sym in dict.fromkeys(symbols):
            try:
                instrument = self._instrument(sym, exchange)
                plan = self._lookback_plan(instrument, tf, end_at, count, now)
            except QuantdeskError as exc:
                errors[sym] = exc
                continue
            groups.setdefault(plan, []).append((sym, instrument))
        arrays: dict[str, BarArrays] = {}
        for (name, start, fill), members in groups.items():
            if fill:
                members = self._fill_many(name, members, tf, start, min(end_at, now), now, errors)
            read = self.store.read_many(name, [i.id.key for _, i in members], tf, start, end_at)
            for sym, instrument in members:
                bars = read[instrument.id.key]
                arrays[sym] = BarArrays(bars.open_ns[-count:], bars.values[:, -count:])
        return _pack([s for s in symbols if s in arrays], arrays, errors)

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
            if self.registry is not None and self._imported.get(instrument.id.key) != importer:
                self.registry.save(instrument, importer)
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
        name = self._provider_name(instrument, provider_name)
        key = instrument.id.key
        with self._series_lock(name, key, tf):
            self._fill_gaps(name, instrument, tf, start, min(end, now), now)
            return self.store.read(name, key, tf, start, end)

    def _provider_name(self, instrument: Instrument, provider_name: str | None) -> str:
        name = (
            provider_name
            or self._imported.get(instrument.id.key)
            or self.venue_providers.get(instrument.id.venue)
            or self.default_provider
        )
        if name not in self.providers:
            raise InvalidInputError(
                f"provider {name!r} is unknown; use one of {sorted(self.providers)}", field="provider"
            )
        return name

    def _fill_gaps(
        self, name: str, instrument: Instrument, tf: Timeframe, start: datetime, upper: datetime, now: datetime
    ) -> None:
        """Fetch and cache the parts of ``[start, upper)`` the series lacks (caller holds the series lock)."""
        provider = self.providers[name]
        key = instrument.id.key
        newest, pending = self._settled(instrument, tf, now)
        for gap_start, gap_end in _gaps(self.store.coverage(name, key, tf), start, upper, pending):
            bars = provider.history(instrument, tf, gap_start, gap_end)
            last = bars.index[-1].to_pydatetime() if len(bars) else None
            # Record as covered just what cannot change later: everything before now - timeframe,
            # and up to the newest bar the provider returned. When the gap ends after the newest
            # closed bar and that bar is in the cache, the series is complete up to the next bar
            # to close (an NSE daily series after the close: through the next session's open);
            # a provider that has not published that bar yet leaves the tail to be asked again.
            if newest is not None and gap_end > newest and (gap_start > newest or (last is not None and last >= newest)):
                safe_end = pending
            else:
                safe_end = min(gap_end, now - tf.delta)
                if last is not None:
                    safe_end = max(safe_end, min(gap_end, last + _TICK))
            covered = [(gap_start, safe_end)] if safe_end > gap_start else []
            if len(bars) or covered:
                self.store.write(name, key, tf, bars, covered)

    def _settled(self, instrument: Instrument, tf: Timeframe, now: datetime) -> tuple[datetime | None, datetime]:
        """``settled_bars`` of the instrument's venue, remembered until the next bar closes."""
        rules = self._rules(instrument)
        key = (instrument.id.venue, tf)
        hit = self._settled_cache.get(key)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2]
        newest, pending = settled_bars(rules, tf, now)
        since = bar_close_at(rules, tf, newest) if newest is not None else _EPOCH
        self._settled_cache[key] = (since, bar_close_at(rules, tf, pending), (newest, pending))
        return newest, pending

    def _lookback_plan(
        self, instrument: Instrument, tf: Timeframe, end_at: datetime, count: int, now: datetime
    ) -> tuple[str, datetime, bool]:
        """(provider, start, whether to fetch gaps) of one symbol's lookback, as history_lookback decides."""
        imported = self._imported.get(instrument.id.key)
        if imported and imported not in (self.default_provider, *self.venue_providers.values()):
            return imported, _EPOCH, False
        name = self._provider_name(instrument, None)
        start = self._lookback_start(instrument, tf, end_at, count)
        span = (min(end_at, now) - start) / tf.delta
        if span > MAX_RANGE_BARS:
            raise InvalidInputError(
                f"the range {start.isoformat()} to {end_at.isoformat()} spans about {int(span):,} {tf.value} bars; "
                f"ask for at most {MAX_RANGE_BARS:,} at a time (narrow start/end or use a coarser timeframe)",
                field="start",
            )
        return name, start, True

    def _fill_many(
        self,
        name: str,
        members: list[tuple[str, Instrument]],
        tf: Timeframe,
        start: datetime,
        upper: datetime,
        now: datetime,
        errors: dict[str, QuantdeskError],
    ) -> list[tuple[str, Instrument]]:
        """Fill the gaps of every member whose coverage lacks part of ``[start, upper)``; drop those that fail."""
        coverage = self.store.coverage_many(name, [i.id.key for _, i in members], tf)
        todo = [(s, i) for s, i in members
                if _gaps(coverage[i.id.key], start, upper, self._settled(i, tf, now)[1])]
        if not todo:
            return members

        def fill(item: tuple[str, Instrument]) -> QuantdeskError | None:
            instrument = item[1]
            try:
                with self._series_lock(name, instrument.id.key, tf):
                    self._fill_gaps(name, instrument, tf, start, upper, now)
            except QuantdeskError as exc:
                return exc
            return None

        workers = max(1, min(_FILL_THREADS, len(todo) // 16 + 1))
        if workers == 1:
            outcomes = [fill(item) for item in todo]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="bars-fill") as pool:
                outcomes = list(pool.map(fill, todo))
        failed = {sym: exc for (sym, _), exc in zip(todo, outcomes, strict=True) if exc is not None}
        errors.update(failed)
        return [(s, i) for s, i in members if s not in failed]

    def _lookback_start(self, instrument: Instrument, tf: Timeframe, end_at: datetime, count: int) -> datetime:
        """``lookback_start`` for the instrument's venue, remembered: walking a session calendar is slow."""
        rules = self._rules(instrument)
        if rules.continuous:
            return lookback_start(rules, tf, end_at, count)
        # The start depends on end only through its local date and how many of that day's bars
        # closed by it (every bar of an earlier day closed before end).
        day = rules.local_date(end_at)
        closed = sum(1 for _, c in bar_bounds_of_day(rules, tf, day) if c <= end_at)
        key = (instrument.id.venue, rules.name, tf, count, day, closed)
        start = self._starts.get(key)
        if start is None:
            start = lookback_start(rules, tf, end_at, count)
            if len(self._starts) >= _MAX_STARTS:
                self._starts.clear()
            self._starts[key] = start
        return start

    def _restore_imports(self, registry: InstrumentRegistry) -> None:
        for record in registry.load_all():
            try:
                self.catalog.add(record.instrument)
            except ConflictError:  # the catalogue now defines the symbol itself; keep its definition
                log.warning("imported %s differs from the catalogue's definition; using the catalogue's",
                            record.instrument.id.key)
            self._imported[record.instrument.id.key] = record.provider

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


def _gaps(
    covered: list[tuple[datetime, datetime]], start: datetime, end: datetime, pending: datetime
) -> list[tuple[datetime, datetime]]:
    """``_missing`` without the gaps opening at or after ``pending``: no bar there has closed yet."""
    return [(a, b) for a, b in _missing(covered, start, end) if a < pending]


def _lookback_count(lookback: object) -> int:
    try:
        count = int(lookback)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidInputError(f"lookback {lookback!r} must be a whole number", field="lookback") from None
    if not 0 < count <= MAX_LOOKBACK:
        raise InvalidInputError(f"lookback {lookback} must be between 1 and {MAX_LOOKBACK}", field="lookback")
    return count


def _interval(timeframe: Timeframe | str) -> Timeframe:
    return Timeframe(timeframe) if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe, field="interval")


def _pack(order: list[str], arrays: Mapping[str, BarArrays], errors: dict[str, QuantdeskError]) -> LookbackBatch:
    lengths = np.fromiter((len(arrays[s].open_ns) for s in order), dtype=np.int64, count=len(order))
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if order:
        open_ns = np.concatenate([arrays[s].open_ns for s in order])
        values = np.concatenate([arrays[s].values for s in order], axis=1)
    else:
        open_ns, values = np.empty(0, np.int64), np.empty((len(BAR_COLUMNS), 0))
    return LookbackBatch(tuple(order), open_ns, values, offsets, errors)
