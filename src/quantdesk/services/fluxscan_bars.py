"""Bars for scans: the last ``lookback`` bars of many symbols, packed as one ScanBars.

Reading 2,000 series one by one through the Parquet cache costs about 2 ms each; a scan
needs them all at once, and daily bars change only when a bar closes. :class:`ScanBarsLoader`
keeps each symbol's last read in memory, tagged with the venue's *bar epoch* (which bars have
closed by now); an entry is reused only while no new bar has closed on its venue and it is
younger than ``ttl_s`` (the bound on staleness after a cache clear or a file import).
Missing series load on a few threads (Parquet reads release the GIL).
"""

from __future__ import annotations

import threading
import time as monotonic
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np

from quantdesk.core.errors import QuantdeskError
from quantdesk.core.instruments import Venue
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import SessionRules, bar_bounds_of_day, nse_rules
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.scanner_code import BAR_COLUMNS, ScanBars

_COLUMNS = list(BAR_COLUMNS)


def bar_epoch(rules: SessionRules, timeframe: Timeframe, now: datetime) -> tuple:
    """A value that changes exactly when another bar of ``timeframe`` closes on the venue."""
    if rules.continuous:
        return ("c", int(now.timestamp()) // timeframe.seconds)
    day = rules.local_date(now)
    closed = sum(1 for _, close in bar_bounds_of_day(rules, timeframe, day) if close <= now)
    return ("s", day.isoformat(), closed)


def slice_bars(bars: ScanBars, start: int, stop: int) -> ScanBars:
    """Symbols ``start:stop`` of ``bars`` (views, no copy)."""
    a, b = int(bars.offsets[start]), int(bars.offsets[stop])
    return ScanBars(bars.symbols[start:stop], bars.index_ns[a:b], bars.values[:, a:b],
                    bars.offsets[start:stop + 1] - a)


class ScanBarsLoader:
    """Load and pack bars of many symbols through the market-data service, with a memory layer."""

    def __init__(self, market: MarketDataService, *, threads: int = 4, ttl_s: float = 300.0,
                 max_entries: int = 50_000, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.market = market
        self.threads = threads
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._now = now
        self._cache: dict[tuple, tuple[tuple, float, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def _rules(self, exchange: str) -> SessionRules:
        venue = Venue(exchange)
        sessions = self.market.sessions
        return sessions.get(venue) or sessions.get(Venue.NSE) or nse_rules()

    def load(self, symbols: Sequence[str], exchange: str, timeframe: Timeframe,
             lookback: int) -> tuple[ScanBars, dict[str, str]]:
        """Bars of ``symbols`` (those that loaded, in order) and an error message per symbol that did not."""
        now = self._now()
        epoch = bar_epoch(self._rules(exchange), timeframe, now)
        fresh_after = monotonic.monotonic() - self.ttl_s
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        missing: list[str] = []
        with self._lock:
            for sym in symbols:
                entry = self._cache.get((exchange, sym, timeframe, lookback))
                if entry is not None and entry[0] == epoch and entry[1] >= fresh_after:
                    arrays[sym] = (entry[2], entry[3])
                else:
                    missing.append(sym)
        errors: dict[str, str] = {}
        if missing:
            def read(sym: str):
                try:
                    frame = self.market.history_lookback(sym, timeframe, lookback, exchange=exchange)
                except QuantdeskError as exc:
                    return sym, None, exc.message
                values = frame[_COLUMNS].to_numpy(dtype=np.float64).T.copy()
                return sym, (frame.index.as_unit("ns").asi8.copy(), values), None

            workers = max(1, min(self.threads, len(missing) // 16 + 1))
            if workers == 1:
                loaded = [read(s) for s in missing]
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="scan-bars") as pool:
                    loaded = list(pool.map(read, missing))
            stamp = monotonic.monotonic()
            with self._lock:
                if len(self._cache) + len(loaded) > self.max_entries:
                    self._cache.clear()
                for sym, pair, error in loaded:
                    if pair is None:
                        errors[sym] = error or "no data"
                        continue
                    arrays[sym] = pair
                    self._cache[(exchange, sym, timeframe, lookback)] = (epoch, stamp, pair[0], pair[1])
        order = [s for s in symbols if s in arrays]
        lengths = np.fromiter((len(arrays[s][0]) for s in order), dtype=np.int64, count=len(order))
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if order:
            index_ns = np.concatenate([arrays[s][0] for s in order])
            values = np.concatenate([arrays[s][1] for s in order], axis=1)
        else:
            index_ns, values = np.empty(0, np.int64), np.empty((len(_COLUMNS), 0))
        return ScanBars(tuple(order), index_ns, values, offsets), errors

    def clear(self) -> None:
        """Forget every in-memory series."""
        with self._lock:
            self._cache.clear()
