"""SMA crossover: long when the fast SMA crosses above the slow one, out (or short) when it crosses below.

A cross is strict on both bars, as kernc/backtesting.py's ``crossover``: ``fast[i-1] < slow[i-1]``
and ``fast[i] > slow[i]``. Signals are evaluated at the bar's close; orders fill at the next
open. Runs on the event path and, unchanged, on the fast path.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import talib

from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.strategy import BarData, Parameter, Signals, Strategy, register_strategy, signal_step


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True at ``i`` when ``a[i-1] < b[i-1]`` and ``a[i] > b[i]`` (NaN compares false)."""
    out = np.zeros(len(a), dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out


@register_strategy("sma_cross")
class SmaCross(Strategy):
    description = "Simple moving average crossover"
    parameters = (
        Parameter("fast", int, 10, "fast SMA period (bars)", minimum=1, maximum=10_000),
        Parameter("slow", int, 20, "slow SMA period (bars)", minimum=2, maximum=10_000),
        Parameter("allow_short", bool, False, "go short on a downward cross instead of only exiting"),
        Parameter("size_fraction", Decimal, Decimal(1), "fraction of available margin per entry",
                  minimum=0.0001, maximum=1),
    )

    def validate(self) -> None:
        if self.params["fast"] >= self.params["slow"]:
            raise InvalidInputError(
                f"fast ({self.params['fast']}) must be shorter than slow ({self.params['slow']})",
                field="parameters.fast")

    def signals(self, data: BarData) -> Signals:
        close = np.ascontiguousarray(data.close, dtype=np.float64)
        fast = talib.SMA(close, timeperiod=self.params["fast"])
        slow = talib.SMA(close, timeperiod=self.params["slow"])
        up = crossed_above(fast, slow)
        down = crossed_above(slow, fast)
        short = self.params["allow_short"]
        return Signals(up, down, down if short else None, up if short else None)

    def prepare(self, data: BarData) -> None:
        s = self.signals(data)
        none = np.zeros(len(data), dtype=np.bool_)
        se = none if s.short_entry is None else s.short_entry
        sx = none if s.short_exit is None else s.short_exit
        # plain lists: indexing them per bar is several times cheaper than numpy scalars
        self._le, self._lx, self._se, self._sx = (a.tolist() for a in (s.long_entry, s.long_exit, se, sx))
        self._active = s.long_entry | s.long_exit | se | sx
        self._any = self._active.tolist()
        self._fraction = self.params["size_fraction"]

    def active_bars(self) -> np.ndarray:
        return self._active

    def on_bar(self, ctx) -> None:
        i = ctx.i
        if self._any[i]:
            signal_step(ctx, self._le[i], self._lx[i], self._se[i], self._sx[i], self._fraction)
