"""Simulated real-time feed continuing the SimFeed history: ticks, completed 1m bars, a top-5 book.

Every minute's ticks trace that minute's simulated 1m bar (open, both extremes, close), so
the bars this feed completes are exactly the bars ``SimFeed.history`` returns for the same
minutes. Time runs ``speed`` times faster than the wall clock (``speed=None``: as fast as
possible, for tests). Events go to any publisher with ``async publish(topic, message)`` and
are also available as an async iterator:

* ``market:<SYM>``  ``{"type": "market", "symbol", "data": {price, bid, ask, volume_24h, change_24h, timestamp}}``
* ``book:<SYM>``    ``{"type": "book", "symbol", "data": {bids: [[price, size]x5], asks: [...], timestamp}}``
* ``bars:<SYM>``    ``{"type": "bar", "symbol", "timeframe": "1m", "data": {timestamp, open, high, low, close, volume}}``

NSE instruments tick only inside their sessions.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from quantdesk.adapters.feeds.sim import SimFeed, wall_clock
from quantdesk.core.clock import Clock
from quantdesk.core.instruments import Instrument, Venue
from quantdesk.core.market import Timeframe

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


class Publisher(Protocol):
    async def publish(self, topic: str, message: dict) -> None: ...


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LiveSimFeed:
    """Asyncio feed of simulated ticks, bars and books for ``instruments``."""

    def __init__(
        self,
        sim: SimFeed,
        instruments: Sequence[Instrument],
        *,
        speed: float | None = 1.0,
        ticks_per_bar: int = 12,
        start: datetime | None = None,
        clock: Clock | Callable[[], datetime] = wall_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        book_levels: int = 5,
    ):
        if speed is not None and speed <= 0:
            raise ValueError(f"speed {speed} must be positive (or None for no pacing)")
        if ticks_per_bar < 4:
            raise ValueError(f"ticks_per_bar {ticks_per_bar} must be at least 4 (open, high, low, close)")
        self.sim = sim
        self.instruments = list(instruments)
        self.speed = speed
        self.ticks_per_bar = ticks_per_bar
        self.book_levels = book_levels
        self._clock = clock.now if isinstance(clock, Clock) else clock
        self._sleep = sleep
        self._start = start
        self._stopped = False

    def stop(self) -> None:
        """Ask a running ``events``/``run`` loop to finish after the current event."""
        self._stopped = True

    async def run(self, publisher: Publisher, *, max_minutes: int | None = None) -> int:
        """Publish every event to ``publisher`` until stopped or ``max_minutes`` have run; return the count."""
        count = 0
        async for topic, message in self.events(max_minutes=max_minutes):
            await publisher.publish(topic, message)
            count += 1
        return count

    async def events(self, *, max_minutes: int | None = None) -> AsyncIterator[tuple[str, dict]]:
        """Yield (topic, message) pairs in simulated-time order, paced by ``speed``."""
        self._stopped = False
        begin = (self._start or self._clock()).astimezone(UTC).replace(second=0, microsecond=0)
        wall0 = time.monotonic()
        minute = begin
        done = 0
        while not self._stopped and (max_minutes is None or done < max_minutes):
            per_instrument = [self._minute_events(inst, minute) for inst in self.instruments]
            timeline = sorted(
                (at, order, topic, message)
                for events in per_instrument
                for order, (at, topic, message) in enumerate(events)
            )
            for at, _, topic, message in timeline:
                if self._stopped:
                    return
                await self._pace(wall0, (at - begin).total_seconds())
                yield topic, message
            minute += _MINUTE
            done += 1
            if not any(per_instrument) and self._all_sessions_closed(minute):
                minute = self._next_open(minute)  # skip nights and holidays (paced as elapsed time)

    # ---- internals ---------------------------------------------------------------------
    async def _pace(self, wall0: float, sim_elapsed_s: float) -> None:
        if self.speed is None:
            await asyncio.sleep(0)  # let other tasks run
            return
        delay = wall0 + sim_elapsed_s / self.speed - time.monotonic()
        if delay > 0:
            await self._sleep(delay)

    def _all_sessions_closed(self, at: datetime) -> bool:
        return all(not self.sim.session_rules(i).is_open(at) for i in self.instruments)

    def _next_open(self, at: datetime) -> datetime:
        return min(self.sim.session_rules(i).next_open(at) for i in self.instruments)

    def _minute_events(self, instrument: Instrument, minute: datetime) -> list[tuple[datetime, str, dict]]:
        bar = self.sim.path(instrument, Timeframe.M1, minute, minute + _MINUTE)
        if not len(bar):
            return []
        o, h, lo, c, v = (float(bar[col].iloc[0]) for col in ("open", "high", "low", "close", "volume"))
        symbol = instrument.symbol
        tick = float(instrument.tick_size)
        key_hash = zlib.crc32(instrument.id.key.encode())
        rng = np.random.default_rng([self.sim.seed, key_hash, int(minute.timestamp()), 3])
        prices = _tick_path(rng, o, h, lo, c, self.ticks_per_bar, tick)
        sizes = np.diff(np.floor(np.linspace(0, v, self.ticks_per_bar + 1)))
        day_ago = self.sim.path(instrument, Timeframe.M1, minute - _DAY, minute)
        reference = float(day_ago["open"].iloc[0]) if len(day_ago) else o
        base_volume = float(day_ago["volume"].sum()) if len(day_ago) else 0.0
        events: list[tuple[datetime, str, dict]] = []
        step = 60.0 / (self.ticks_per_bar + 1)
        spread = max(
            tick, round(c * (0.0001 if instrument.id.venue == Venue.CRYPTO else 0.0002) / tick) * tick
        )
        for j, price in enumerate(prices):
            at = minute + timedelta(seconds=step * (j + 1))
            bid = _on_tick(price - spread / 2, tick, np.floor)
            ask = max(_on_tick(price + spread / 2, tick, np.ceil), bid + tick)
            stamp = _iso(at)
            events.append(
                (
                    at,
                    f"market:{symbol}",
                    {
                        "type": "market",
                        "symbol": symbol,
                        "data": {
                            "price": price,
                            "bid": bid,
                            "ask": ask,
                            "size": float(sizes[j]),
                            "volume_24h": round((base_volume + float(sizes[: j + 1].sum())) * price, 2),
                            "change_24h": round((price / reference - 1) * 100, 4),
                            "timestamp": stamp,
                        },
                    },
                )
            )
            events.append(
                (
                    at,
                    f"book:{symbol}",
                    self._book(rng, symbol, bid, ask, tick, float(instrument.lot_size), v, stamp),
                )
            )
        close_at = minute + _MINUTE
        events.append(
            (
                close_at,
                f"bars:{symbol}",
                {
                    "type": "bar",
                    "symbol": symbol,
                    "timeframe": "1m",
                    "data": {
                        "timestamp": _iso(minute),
                        "open": o,
                        "high": h,
                        "low": lo,
                        "close": c,
                        "volume": v,
                    },
                },
            )
        )
        return events

    def _book(
        self,
        rng,
        symbol: str,
        bid: float,
        ask: float,
        tick: float,
        lot: float,
        minute_volume: float,
        stamp: str,
    ):
        n = self.book_levels
        depth = max(minute_volume / 20, lot)
        sizes = np.maximum(
            np.round(depth * rng.lognormal(0, 0.6, (2, n)) * (1 + np.arange(n)) / lot) * lot, lot
        )
        bids = [[_on_tick(bid - i * tick, tick, np.round), float(sizes[0, i])] for i in range(n)]
        asks = [[_on_tick(ask + i * tick, tick, np.round), float(sizes[1, i])] for i in range(n)]
        return {"type": "book", "symbol": symbol, "data": {"bids": bids, "asks": asks, "timestamp": stamp}}


def _on_tick(value: float, tick: float, fn) -> float:
    inv = 1 / tick
    if abs(inv - round(inv)) < 1e-9:
        return float(fn(value * round(inv)) / round(inv))
    return float(fn(value / tick) * tick)


def _tick_path(rng, o: float, h: float, lo: float, c: float, count: int, tick: float) -> list[float]:
    """``count`` prices from open to close that touch the high and the low, on the tick grid."""
    first, second = (h, lo) if rng.random() < 0.5 else (lo, h)
    cut1, cut2 = sorted(rng.choice(np.arange(1, count - 1), size=2, replace=False))
    anchors_x = [0, cut1, cut2, count - 1]
    anchors_y = [o, first, second, c]
    path = np.interp(np.arange(count), anchors_x, anchors_y)
    noise = rng.normal(0, (h - lo) * 0.08, count)
    noise[anchors_x] = 0.0
    path = np.clip(path + noise, lo, h)
    return [_on_tick(p, tick, np.round) for p in path]
