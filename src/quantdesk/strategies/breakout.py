"""Donchian breakout with an ATR stop, sized by risk per trade.

Entry (at the bar's close, filled at the next open): the close breaks above the highest high
of the previous ``entry_period`` bars (below the lowest low for shorts). The stop loss is
``atr_multiplier × ATR(atr_period)`` from the close, attached to the order so the broker
works it from the fill on. Size: the quantity whose loss at the stop (fees included) is
``risk_per_trade`` of equity, rounded down to the lot size. Exit: the close crosses the
``exit_period`` channel on the other side, or the stop.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import talib

from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.risk import size_for_risk
from quantdesk.engine.strategy import BarData, Parameter, Strategy, register_strategy


@register_strategy("breakout")
class Breakout(Strategy):
    description = "Donchian channel breakout with an ATR stop and risk-per-trade sizing"
    parameters = (
        Parameter("entry_period", int, 20, "bars in the entry channel", minimum=2, maximum=1_000),
        Parameter("exit_period", int, 10, "bars in the exit channel", minimum=2, maximum=1_000),
        Parameter("atr_period", int, 14, "ATR period (bars)", minimum=1, maximum=1_000),
        Parameter("atr_multiplier", float, 2.0, "stop distance in ATRs", minimum=0.1, maximum=20),
        Parameter("risk_per_trade", Decimal, Decimal("0.01"), "fraction of equity lost at the stop",
                  minimum=0.0001, maximum=0.2),
        Parameter("allow_short", bool, False, "trade downside breakouts too"),
    )

    def validate(self) -> None:
        if self.params["exit_period"] > self.params["entry_period"]:
            raise InvalidInputError("exit_period must not exceed entry_period", field="parameters.exit_period")

    def prepare(self, data: BarData) -> None:
        high = np.ascontiguousarray(data.high, dtype=np.float64)
        low = np.ascontiguousarray(data.low, dtype=np.float64)
        close = np.ascontiguousarray(data.close, dtype=np.float64)
        n_in, n_out = self.params["entry_period"], self.params["exit_period"]
        # channels of the bars *before* i, so a close can break out of them
        upper = np.full(len(data), np.nan)
        lower = np.full(len(data), np.nan)
        exit_hi = np.full(len(data), np.nan)
        exit_lo = np.full(len(data), np.nan)
        if len(data) > n_in:
            upper[1:] = talib.MAX(high, n_in)[:-1]
            lower[1:] = talib.MIN(low, n_in)[:-1]
        if len(data) > n_out:
            exit_hi[1:] = talib.MAX(high, n_out)[:-1]
            exit_lo[1:] = talib.MIN(low, n_out)[:-1]
        atr = talib.ATR(high, low, close, self.params["atr_period"])
        self._close = close.tolist()
        self._upper, self._lower = upper.tolist(), lower.tolist()
        self._exit_hi, self._exit_lo = exit_hi.tolist(), exit_lo.tolist()
        self._atr = atr.tolist()

    def on_bar(self, ctx) -> None:
        i = ctx.i
        close, atr = self._close[i], self._atr[i]
        qty = ctx.position_quantity
        if qty > 0:
            if close < self._exit_lo[i]:
                ctx.close_position()
            return
        if qty < 0:
            if close > self._exit_hi[i]:
                ctx.close_position()
            return
        if not atr == atr or atr <= 0:  # NaN during warm-up
            return
        distance = atr * self.params["atr_multiplier"]
        if close > self._upper[i]:
            self._enter(ctx, close, close - distance, buy=True)
        elif self.params["allow_short"] and close < self._lower[i]:
            self._enter(ctx, close, close + distance, buy=False)

    def _enter(self, ctx, close: float, stop: float, *, buy: bool) -> None:
        if stop <= 0:
            return
        entry = ctx.round_price(close)
        stop_price = ctx.round_price(stop)
        if stop_price == entry:
            return
        quantity = size_for_risk(equity=ctx.equity(), risk_fraction=self.params["risk_per_trade"],
                                 entry_price=entry, stop_price=stop_price, instrument=ctx.instrument)
        if quantity <= 0:
            return
        if buy:
            ctx.buy(quantity, stop_loss=stop_price)
        else:
            ctx.sell(quantity, stop_loss=stop_price)
