"""Deterministic simulated market: history for every catalogued instrument, no network.

Construction (hierarchical, so a daily request over years never builds years of 1m bars
in one go and every answer is reproducible):

1. A daily *anchor* path per instrument: log price = slow mean reversion around the
   instrument's reference price plus GARCH(1,1) shocks with Student-t innovations
   (volatility clustering, fat tails). Drawn in calendar-year chunks seeded by
   (seed, symbol, year) and chained from 2000-01-01, so it extends as time moves on.
2. Per trading day, a 1m path seeded by (seed, symbol, day): a bridge from the day's open
   (the previous close; NSE adds an overnight gap) to the anchored close, with t-distributed
   steps, intraday volatility regimes and seasonality (U-shape at NSE), wicks, and integer
   volumes with the same seasonality.
3. Every coarser bar is an exact aggregation of those 1m bars (first open, max high, min
   low, last close, summed integer volume), so ``1d == aggregate(1h) == aggregate(1m)``
   bit for bit. Aggregates are cached per (symbol, day, timeframe).

Prices sit on the instrument's tick grid. A request only returns bars already closed by
the injected clock; NSE bars exist only inside sessions of the given rules.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from quantdesk.core.clock import Clock
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.instruments import Instrument, InstrumentKind, Venue
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import SessionRules, crypto_rules, nse_rules
from quantdesk.services.ports import BAR_COLUMNS

EPOCH = date(2000, 1, 1)
_NS_MIN = 60_000_000_000
_NS_PER_S = 1_000_000_000
_T_DF = 4.0
_T_SCALE = math.sqrt((_T_DF - 2) / _T_DF)  # unit variance Student-t
_GARCH_ALPHA, _GARCH_BETA = 0.08, 0.90
_MEAN_REVERSION = 1 / 500  # per day, half-life about 350 days
_BATCH_DAYS = 64

# Daily volatility and traded notional per day (quote currency) by instrument key.
_DAILY_VOL = {"BTCUSDT": 0.03, "ETHUSDT": 0.04}
_DAILY_NOTIONAL = {"BTCUSDT": 2e9, "ETHUSDT": 1e9}


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Profile:
    key: str
    key_hash: int
    base_price: float
    daily_vol: float
    tick: float
    inv_tick: float  # 1/tick when that is a whole number (exact rounding), else 0
    minute_volume: float
    gap_vol: float  # overnight gap size in units of daily volatility (0 for 24/7 venues)
    u_shape: bool


@dataclass(slots=True)
class _Bars:
    open_ns: np.ndarray
    close_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class _Lru:
    """Least-recently-used cache bounded by total bars held (each entry weighs its bar count)."""

    def __init__(self, max_bars: int):
        self.max_bars = max_bars
        self._data: OrderedDict = OrderedDict()
        self._bars = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value: _Bars) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bars -= len(old.open_ns)
            self._data[key] = value
            self._bars += len(value.open_ns)
            while self._bars > self.max_bars and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._bars -= len(dropped.open_ns)


class SimFeed:
    """Simulated history provider (``name = "sim"``); same (seed, symbol, range) gives identical bars."""

    name = "sim"

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        seed: int = 0,
        sessions: Mapping[Venue, SessionRules] | None = None,
        reference_prices: Mapping[str, float] | None = None,
        now: Clock | Callable[[], datetime] = wall_clock,
    ):
        self.seed = int(seed)
        self._instruments = list(instruments)
        self._sessions = dict(sessions or {Venue.CRYPTO: crypto_rules(), Venue.NSE: nse_rules()})
        self._prices = dict(reference_prices or {})
        self._now = now.now if isinstance(now, Clock) else now
        self._anchors: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        self._anchor_lock = threading.Lock()
        # About 40 MB of 1m days and 110 MB of coarser bars at most.
        self._minutes = _Lru(400_000)
        self._aggregates = _Lru(2_000_000)

    # ---- HistoryProvider -------------------------------------------------------------
    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Closed bars opening in ``[start, end)``; bars closing after the clock's now are left out."""
        now_ns = _to_ns(self._now())
        return self._frame(instrument, Timeframe(timeframe), start, end, now_ns)

    def search(self, q: str) -> list[Instrument]:
        needle = (q or "").strip().upper()
        return [i for i in self._instruments if needle in i.symbol.upper() or needle in i.name.upper()]

    # ---- for the live feed -----------------------------------------------------------
    def path(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """The predetermined simulated bars opening in ``[start, end)``, including bars not yet closed."""
        return self._frame(instrument, Timeframe(timeframe), start, end, None)

    def session_rules(self, instrument: Instrument) -> SessionRules:
        """The session rules this feed applies to ``instrument``'s venue."""
        rules = self._sessions.get(instrument.id.venue)
        if rules is None:
            rules = self._sessions.get(Venue.NSE) if instrument.id.venue == Venue.BSE else None
        if rules is None:
            raise InvalidInputError(
                f"no session rules for venue {instrument.id.venue.value}",
                field="venue",
                code="UNSUPPORTED_VENUE",
            )
        return rules

    # ---- construction ----------------------------------------------------------------
    def _frame(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, now_ns: int | None
    ) -> pd.DataFrame:
        start_ns, end_ns = _to_ns(start, "start"), _to_ns(end, "end")
        if start_ns > end_ns:
            raise InvalidInputError(
                f"start {start.isoformat()} is after end {end.isoformat()}; start must be at or before end",
                field="start",
            )
        rules = self.session_rules(instrument)
        profile = self._profile(instrument)
        upper_ns = end_ns if now_ns is None else min(end_ns, now_ns)
        if upper_ns <= start_ns:
            return empty_bars()
        first_day = max(rules.local_date(start) - timedelta(days=1), EPOCH + timedelta(days=1))
        last_day = rules.local_date(_from_ns(upper_ns))
        days = rules.trading_days(first_day, last_day)
        parts = self._aggregated(profile, rules, timeframe, days)
        if not parts:
            return empty_bars()
        bars = _concat(parts)
        mask = (bars.open_ns >= start_ns) & (bars.open_ns < end_ns)
        if now_ns is not None:
            mask &= bars.close_ns <= now_ns
        if not mask.any():  # the common tail request (nothing closed since the last read): skip pandas
            return empty_bars()
        return bars_frame(
            bars.open_ns[mask],
            bars.open[mask],
            bars.high[mask],
            bars.low[mask],
            bars.close[mask],
            bars.volume[mask],
        )

    def _aggregated(
        self, profile: _Profile, rules: SessionRules, timeframe: Timeframe, days: list[date]
    ) -> list[_Bars]:
        out: dict[date, _Bars] = {}
        todo = []
        cache = self._minutes if timeframe == Timeframe.M1 else self._aggregates
        for day in days:
            cached = cache.get(
                (profile.key, day) if timeframe == Timeframe.M1 else (profile.key, day, timeframe)
            )
            if cached is None:
                todo.append(day)
            else:
                out[day] = cached
        for i in range(0, len(todo), _BATCH_DAYS):
            batch = todo[i : i + _BATCH_DAYS]
            for day, minutes in zip(batch, self._minute_batch(profile, rules, batch), strict=True):
                if timeframe == Timeframe.M1:
                    out[day] = minutes  # already held by the minute cache
                    continue
                agg = _aggregate(minutes, timeframe)
                self._aggregates.put((profile.key, day, timeframe), agg)
                out[day] = agg
        return [out[d] for d in days]

    def _minute_batch(self, profile: _Profile, rules: SessionRules, days: list[date]) -> list[_Bars]:
        """1m bars of each day in ``days``, vectorised over the batch; each day has its own seed."""
        result: list[_Bars | None] = []
        missing: list[int] = []
        for i, day in enumerate(days):
            hit = self._minutes.get((profile.key, day))
            result.append(hit)
            if hit is None:
                missing.append(i)
        if not missing:
            return result  # type: ignore[return-value]
        bounds = [rules.session(days[i]) for i in missing]
        lengths = {int((b[1] - b[0]).total_seconds()) // 60 for b in bounds if b}
        if len(lengths) != 1:  # sessions of unequal length (half days): build one by one
            for i in missing:
                result[i] = self._minute_batch_uniform(profile, rules, [days[i]])[0]
        else:
            for i, bars in zip(
                missing, self._minute_batch_uniform(profile, rules, [days[i] for i in missing]), strict=True
            ):
                result[i] = bars
        for i in missing:
            self._minutes.put((profile.key, days[i]), result[i])
        return result  # type: ignore[return-value]

    def _minute_batch_uniform(self, profile: _Profile, rules: SessionRules, days: list[date]) -> list[_Bars]:
        sessions = [rules.session(d) for d in days]
        n = int((sessions[0][1] - sessions[0][0]).total_seconds()) // 60
        k = len(days)
        offsets = np.array([(d - EPOCH).days for d in days])
        levels, sigmas = self._anchor(profile, int(offsets.max()))
        close_day = _on_ticks(profile, profile.base_price * np.exp(levels[offsets]))
        prev_close = _on_ticks(profile, profile.base_price * np.exp(levels[offsets - 1]))
        sigma_day = sigmas[offsets]

        shocks = np.empty((k, n))
        regime = np.empty((k, (n + 59) // 60 + 1))
        wick = np.empty((2, k, n))
        vol_noise = np.empty((k, n))
        gap = np.empty(k)
        for row, offset in enumerate(offsets):
            rng = np.random.default_rng([self.seed, profile.key_hash, int(offset), 2])
            shocks[row] = rng.standard_t(_T_DF, n)
            regime[row] = rng.standard_normal(regime.shape[1])
            normals = rng.standard_normal((3, n))
            wick[:, row] = normals[:2]
            vol_noise[row] = normals[2]
            gap[row] = rng.standard_t(_T_DF)
        shocks *= _T_SCALE
        gap *= _T_SCALE

        if profile.gap_vol > 0:
            day_open = _on_ticks(profile, prev_close * np.exp(profile.gap_vol * sigma_day * gap))
        else:
            day_open = prev_close
        # Intraday volatility: hourly regimes (AR-smoothed lognormal) times a seasonal shape.
        blocks = 0.3 * (regime[:, 1:] + 0.6 * regime[:, :-1]) / math.sqrt(1.36)
        u = (np.arange(n) + 0.5) / n
        shape = 0.6 + 2.4 * (2 * u - 1) ** 2 if profile.u_shape else 1 + 0.3 * np.cos(2 * np.pi * (u - 0.6))
        weight = np.exp(np.repeat(blocks, 60, axis=1)[:, :n]) * shape
        weight /= np.sqrt(np.mean(weight**2, axis=1, keepdims=True))
        sigma_min = (sigma_day / math.sqrt(n))[:, None] * weight

        log_path = np.log(day_open)[:, None] + np.cumsum(shocks * sigma_min, axis=1)
        drift = log_path[:, -1] - np.log(close_day)
        log_path -= (np.arange(1, n + 1) / n)[None, :] * drift[:, None]
        closes = _on_ticks(profile, np.exp(log_path))
        closes[:, -1] = close_day
        opens = np.empty_like(closes)
        opens[:, 0] = day_open
        opens[:, 1:] = closes[:, :-1]
        highs = _on_ticks(
            profile, np.maximum(opens, closes) * np.exp(np.abs(wick[0]) * sigma_min * 0.5), "ceil"
        )
        lows = _on_ticks(
            profile, np.minimum(opens, closes) * np.exp(-np.abs(wick[1]) * sigma_min * 0.5), "floor"
        )
        highs = np.maximum(highs, np.maximum(opens, closes))
        lows = np.maximum(lows, profile.tick)
        lows = np.minimum(lows, np.minimum(opens, closes))

        vshape = 0.5 + 2.0 * (2 * u - 1) ** 2 if profile.u_shape else shape
        regime_boost = (sigma_day / profile.daily_vol)[:, None]
        volumes = np.floor(
            profile.minute_volume
            * vshape
            * regime_boost
            * (0.5 + 0.5 * np.abs(shocks))
            * np.exp(0.4 * vol_noise - 0.08)
        )

        out = []
        for row, (opens_at, closes_at) in enumerate(sessions):
            first_ns = _to_ns(opens_at)
            open_ns = first_ns + np.arange(n, dtype=np.int64) * _NS_MIN
            close_ns = np.minimum(open_ns + _NS_MIN, _to_ns(closes_at))
            out.append(_Bars(open_ns, close_ns, opens[row], highs[row], lows[row], closes[row], volumes[row]))
        return out

    def _anchor(self, profile: _Profile, last_offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Daily log-level and volatility arrays covering day offsets 0..last_offset."""
        with self._anchor_lock:
            levels, sigmas, years = self._anchors.get(profile.key, (np.empty(0), np.empty(0), 0))
            if len(levels) <= last_offset:
                target_var = profile.daily_vol**2
                omega = target_var * (1 - _GARCH_ALPHA - _GARCH_BETA)
                level = float(levels[-1]) if len(levels) else 0.0
                var = float(sigmas[-1]) ** 2 if len(sigmas) else target_var
                shock = 0.0
                new_levels, new_sigmas = [levels], [sigmas]
                while len(levels) + sum(len(a) for a in new_levels[1:]) <= last_offset:
                    year = EPOCH.year + years
                    n = (date(year + 1, 1, 1) - date(year, 1, 1)).days
                    z = (
                        np.random.default_rng([self.seed, profile.key_hash, year, 1]).standard_t(_T_DF, n)
                        * _T_SCALE
                    )
                    lv, sg = np.empty(n), np.empty(n)
                    for i in range(n):
                        var = omega + _GARCH_ALPHA * shock * shock + _GARCH_BETA * var
                        shock = math.sqrt(var) * float(z[i])
                        level = (1 - _MEAN_REVERSION) * level + shock
                        lv[i], sg[i] = level, math.sqrt(var)
                    new_levels.append(lv)
                    new_sigmas.append(sg)
                    years += 1
                levels, sigmas = np.concatenate(new_levels), np.concatenate(new_sigmas)
                self._anchors[profile.key] = (levels, sigmas, years)
            return levels, sigmas

    def _profile(self, instrument: Instrument) -> _Profile:
        key = instrument.id.key
        key_hash = zlib.crc32(key.encode())
        tick = float(instrument.tick_size)
        inv = 1 / tick
        inv_tick = float(round(inv)) if abs(inv - round(inv)) < 1e-9 else 0.0
        crypto = instrument.id.venue == Venue.CRYPTO
        base = self._prices.get(key)
        if base is None:  # unknown symbol: a plausible level derived from its name
            base = (1.0 if crypto else 100.0) * math.exp((key_hash % 1000) / 250)
        if crypto:
            daily_vol = _DAILY_VOL.get(key, 0.05)
            minute_volume = _DAILY_NOTIONAL.get(key, 2e8) / base / 1440
        else:
            daily_vol = 0.017 if instrument.kind == InstrumentKind.EQUITY else 0.012
            minute_volume = 5e9 / base / 375
        return _Profile(
            key, key_hash, base, daily_vol, tick, inv_tick, minute_volume, 0.0 if crypto else 0.35, not crypto
        )


def _on_ticks(profile: _Profile, values: np.ndarray, mode: str = "round") -> np.ndarray:
    # Dividing whole tick counts by 1/tick gives the float nearest k*tick exactly (0.1 stays 0.1).
    fn = {"round": np.round, "ceil": np.ceil, "floor": np.floor}[mode]
    if profile.inv_tick:
        return fn(values * profile.inv_tick) / profile.inv_tick
    return fn(values / profile.tick) * profile.tick


def _aggregate(minutes: _Bars, timeframe: Timeframe) -> _Bars:
    n = len(minutes.open_ns)
    step = timeframe.seconds // 60
    starts = np.arange(0, n, step)
    ends = np.append(starts[1:], n) - 1
    session_close = minutes.close_ns[-1]
    open_ns = minutes.open_ns[starts]
    return _Bars(
        open_ns,
        np.minimum(open_ns + timeframe.seconds * _NS_PER_S, session_close),
        minutes.open[starts],
        np.maximum.reduceat(minutes.high, starts),
        np.minimum.reduceat(minutes.low, starts),
        minutes.close[ends],
        np.add.reduceat(minutes.volume, starts),
    )


def _concat(parts: list[_Bars]) -> _Bars:
    if len(parts) == 1:
        return parts[0]
    return _Bars(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Bars.__slots__))


def empty_bars() -> pd.DataFrame:
    """An empty frame of the standard bar shape (a fresh copy each call)."""
    return _EMPTY.copy()


def bars_frame(open_ns: np.ndarray, o, h, lo, c, v) -> pd.DataFrame:
    """Build the standard bar frame from int64 UTC nanosecond open times and float arrays."""
    index = pd.DatetimeIndex(np.asarray(open_ns, dtype="datetime64[ns]"), name="open_at").tz_localize(UTC)
    data = {
        name: np.asarray(arr, dtype=np.float64)
        for name, arr in zip(BAR_COLUMNS, (o, h, lo, c, v), strict=True)
    }
    return pd.DataFrame(data, index=index)


_EMPTY = bars_frame(np.empty(0, np.int64), *(np.empty(0) for _ in BAR_COLUMNS))


def _to_ns(at: datetime, field: str = "at") -> int:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{field} {at!r} must be a timezone-aware datetime", field=field)
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def _from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
