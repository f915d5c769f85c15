"""RSI momentum (mean reversion at the extremes): buy oversold, exit (or short) overbought.

Signals at bar close with Wilder's RSI (TA-Lib): long entry when RSI < ``oversold``, long
exit when RSI > ``overbought``; with ``allow_short`` a short opens when RSI > ``overbought``
and exits when RSI < ``oversold``. Runs on the event path and the fast path.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import talib

from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.strategy import BarData, Parameter, Signals, Strategy, register_strategy, signal_step


@register_strategy("momentum")
class Momentum(Strategy):
    description = "RSI momentum: trade RSI extremes"
    parameters = (
        Parameter("rsi_period", int, 14, "RSI period (bars)", minimum=2, maximum=1_000),
        Parameter("overbought", float, 70.0, "RSI level that ends longs / opens shorts", minimum=0, maximum=100),
        Parameter("oversold", float, 30.0, "RSI level that opens longs / ends shorts", minimum=0, maximum=100),
        Parameter("allow_short", bool, False, "open shorts when overbought"),
        Parameter("size_fraction", Decimal, Decimal(1), "fraction of available margin per entry",
                  minimum=0.0001, maximum=1),
    )

    def validate(self) -> None:
        if self.params["oversold"] >= self.params["overbought"]:
            raise InvalidInputError(
                f"oversold ({self.params['oversold']}) must be below overbought ({self.params['overbought']})",
                field="parameters.oversold")

    def signals(self, data: BarData) -> Signals:
        rsi = talib.RSI(np.ascontiguousarray(data.close, dtype=np.float64), timeperiod=self.params["rsi_period"])
        with np.errstate(invalid="ignore"):
            low = rsi < self.params["oversold"]
            high = rsi > self.params["overbought"]
        short = self.params["allow_short"]
        return Signals(low, high, high if short else None, low if short else None)

    def prepare(self, data: BarData) -> None:
        s = self.signals(data)
        none = np.zeros(len(data), dtype=np.bool_)
        se = none if s.short_entry is None else s.short_entry
        sx = none if s.short_exit is None else s.short_exit
        # plain lists: indexing them per bar is several times cheaper than numpy scalars
        self._le, self._lx, self._se, self._sx = (a.tolist() for a in (s.long_entry, s.long_exit, se, sx))
        self._any = (s.long_entry | s.long_exit | se | sx).tolist()
        self._fraction = self.params["size_fraction"]

    def on_bar(self, ctx) -> None:
        i = ctx.i
        if self._any[i]:
            signal_step(ctx, self._le[i], self._lx[i], self._se[i], self._sx[i], self._fraction)
