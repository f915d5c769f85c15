"""Range breakout with volume confirmation, an ATR stop and an R-multiple target (the Breakout engine's).

Levels: the highest high and lowest low of the ``lookback`` bars before bar ``i`` (the range).
Entry, at bar ``i``'s close: the close breaks above the range high (below the low for shorts,
when ``allow_short``) and the bar's volume is at least ``volume_multiplier`` × the mean volume
of the ``volume_period`` bars before it. An optional tightness filter skips ranges wider than
``max_range_atr`` ATRs. The stop is ``atr_stop`` × ATR(``atr_period``) from the close (1 R);
the take profit ``take_profit_r`` R beyond the entry (0: none). Both are brackets the kernel
works from the fill on. Size: the quantity whose loss at the stop is ``risk_per_trade`` of
equity, rounded down to the lot.

An engine running this strategy on several markets gives every instance one shared
:class:`SlotBook`: it caps the markets holding a position at once and lets the engine stop
new entries (pause, risk halts) without touching open positions.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from quantdesk.analytics.indicators import atr as atr_indicator
from quantdesk.analytics.indicators import donchian, volume_surge
from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.risk import size_for_risk
from quantdesk.engine.strategy import BarData, Parameter, Strategy, register_strategy


class SlotBook:
    """Entry slots shared by the instances of one engine (one instance per market).

    ``held`` are the markets holding a position as the instances last saw them; ``open`` is
    False while the engine allows no new entries. Read and written from the kernel's thread.
    """

    def __init__(self, max_positions: int, *, open: bool = True):
        if max_positions < 1:
            raise InvalidInputError(f"max_positions must be at least 1, got {max_positions}",
                                    field="max_positions")
        self.max_positions = max_positions
        self.open = open
        self.held: set[str] = set()

    def note(self, symbol: str, holding: bool) -> None:
        if holding:
            self.held.add(symbol)
        else:
            self.held.discard(symbol)

    def may_enter(self, symbol: str) -> bool:
        return self.open and symbol not in self.held and len(self.held) < self.max_positions


@register_strategy("breakout_levels")
class BreakoutLevels(Strategy):
    description = "Range breakout over N bars with volume confirmation, an ATR stop and an R-multiple target"
    parameters = (
        Parameter("lookback", int, 20, "bars that build the range (its high and low are the levels)",
                  minimum=2, maximum=1_000),
        Parameter("volume_period", int, 20, "bars in the average volume", minimum=2, maximum=1_000),
        Parameter("volume_multiplier", float, 1.5, "breakout bar volume over the average volume, at least",
                  minimum=0.0, maximum=100),
        Parameter("atr_period", int, 14, "ATR period (bars)", minimum=1, maximum=1_000),
        Parameter("atr_stop", float, 1.5, "stop distance in ATRs from the entry (1 R)", minimum=0.1, maximum=20),
        Parameter("take_profit_r", float, 2.0, "take profit in R beyond the entry (0: none)", minimum=0, maximum=50),
        Parameter("max_range_atr", float, 0.0, "skip ranges wider than this many ATRs (0: no filter)",
                  minimum=0, maximum=1_000),
        Parameter("risk_per_trade", Decimal, Decimal("0.006"), "fraction of equity lost at the stop",
                  minimum=0.0001, maximum=0.2),
        Parameter("allow_short", bool, True, "trade breakdowns below the range too"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.slots: SlotBook | None = None  # set by an engine running several markets
        self.bars_seen = 0
        self.levels: tuple[float, float] | None = None  # (high, low) of the range before the last bar

    @property
    def warmup(self) -> int:
        """Closed bars needed before the first possible entry."""
        p = self.params
        return max(p["lookback"], p["volume_period"], p["atr_period"]) + 1

    def prepare(self, data: BarData) -> None:
        n = len(data)
        p = self.params
        high = np.ascontiguousarray(data.high, dtype=np.float64)
        low = np.ascontiguousarray(data.low, dtype=np.float64)
        close = np.ascontiguousarray(data.close, dtype=np.float64)
        volume = np.ascontiguousarray(data.volume, dtype=np.float64)
        upper, lower, _ = (np.asarray(x, dtype=np.float64)
                           for x in donchian(high, low, p["lookback"], exclude_current=True))
        surge = np.asarray(volume_surge(volume, p["volume_period"]), dtype=np.float64)
        atr = (np.asarray(atr_indicator(high, low, close, p["atr_period"]), dtype=np.float64)
               if n > p["atr_period"] else np.full(n, np.nan))
        self._close, self._surge = close, surge
        self._upper, self._lower, self._atr = upper, lower, atr
        self.bars_seen = n
        last = n - 1
        self.levels = None if n == 0 or math.isnan(upper[last]) else (float(upper[last]), float(lower[last]))

    def on_bar(self, ctx) -> None:
        i = ctx.i
        slots = self.slots
        holding = ctx.position_quantity != 0
        if slots is not None:
            slots.note(ctx.symbol, holding)
        if holding:
            return  # the stop and the target work from the fill on
        upper, lower, atr, surge = self._upper[i], self._lower[i], self._atr[i], self._surge[i]
        if math.isnan(upper) or math.isnan(atr) or math.isnan(surge) or atr <= 0:
            return  # warm-up
        p = self.params
        if p["max_range_atr"] and (upper - lower) > p["max_range_atr"] * atr:
            return
        close = float(self._close[i])
        if surge < p["volume_multiplier"]:
            return
        if close > upper:
            buy = True
        elif p["allow_short"] and close < lower:
            buy = False
        else:
            return
        if slots is not None and not slots.may_enter(ctx.symbol):
            return
        distance = p["atr_stop"] * atr
        entry = ctx.round_price(close)
        stop = ctx.round_price(close - distance if buy else close + distance)
        if stop <= 0 or stop == entry:
            return
        risk = abs(entry - stop)
        target = None
        if p["take_profit_r"]:
            reward = risk * Decimal(repr(p["take_profit_r"]))
            target = ctx.round_price(entry + reward if buy else entry - reward)
            if target <= 0 or target == entry:
                target = None
        quantity = size_for_risk(equity=ctx.equity(), risk_fraction=p["risk_per_trade"], entry_price=entry,
                                 stop_price=stop, instrument=ctx.instrument)
        if quantity <= 0:
            return
        if buy:
            ctx.buy(quantity, stop_loss=stop, take_profit=target)
        else:
            ctx.sell(quantity, stop_loss=stop, take_profit=target)
        if slots is not None:
            slots.note(ctx.symbol, True)
