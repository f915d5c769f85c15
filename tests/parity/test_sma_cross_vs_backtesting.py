"""quantdesk's sma_cross against kernc/backtesting.py 0.6.6 on GOOG daily: same trades, same final equity."""

from __future__ import annotations

import warnings
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd
import pytest

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402
from backtesting.test import GOOG, SMA  # noqa: E402

from quantdesk.engine.backtest import BacktestConfig, run_backtest  # noqa: E402

CENT = Decimal("0.01")
TOLERANCE = Decimal("0.000001")


class LongOnlySmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self):
        self.sma_fast = self.I(SMA, self.data.Close, self.fast)
        self.sma_slow = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.sma_fast, self.sma_slow):
            self.buy()
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()


def _reference(fast: int, slow: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(GOOG, LongOnlySmaCross, cash=10_000, commission=0.002)
        return bt.run(fast=fast, slow=slow)


def _ours(fast: int, slow: int, mode: str = "event"):
    bars = GOOG.copy()
    bars.index = bars.index.tz_localize("UTC")
    config = BacktestConfig(
        strategy="sma_cross", params={"fast": fast, "slow": slow}, symbol="GOOG", currency="USD",
        initial_balance=Decimal(10_000), commission=Decimal("0.002"), mode=mode,
    )
    return run_backtest(config, bars)


@pytest.mark.parametrize("mode", ["event", "fast"])
@pytest.mark.parametrize(("fast", "slow"), [(10, 20), (5, 30)])
def test_sma_cross_matches_backtesting_py_trade_for_trade(fast, slow, mode):
    ref = _reference(fast, slow)
    ours = _ours(fast, slow, mode)
    ref_trades = ref._trades
    assert len(ours.trades) == len(ref_trades) > 10
    for t, ei, xi, (_, r) in zip(ours.trades, ours.entry_index, ours.exit_index, ref_trades.iterrows(), strict=True):
        assert ei == r["EntryBar"]
        assert xi == r["ExitBar"]
        assert t.quantity == Decimal(int(r["Size"]))
        assert t.entry_price == Decimal(repr(float(r["EntryPrice"])))
        assert t.exit_price == Decimal(repr(float(r["ExitPrice"])))
        assert t.entry_at == pd.Timestamp(r["EntryTime"]).tz_localize("UTC").to_pydatetime()
        # ours is exact; the reference carries float noise (1609.065 vs 1609.0650000000064)
        assert abs(t.pnl - Decimal(repr(float(r["PnL"])))) < TOLERANCE
        assert abs(t.commission - Decimal(repr(float(r["Commission"])))) < TOLERANCE
    ref_final = Decimal(repr(float(ref["Equity Final [$]"])))
    assert abs(ours.final_equity - ref_final) < TOLERANCE
    assert ours.final_equity.quantize(CENT, ROUND_HALF_EVEN) == ref_final.quantize(CENT, ROUND_HALF_EVEN)
    # a position still open at the end is the reference's open trade
    open_trades = ref["_strategy"]._broker.trades
    assert (ours.open_position is not None) == bool(open_trades)
    if open_trades:
        assert ours.open_position["size"] == open_trades[0].size
        assert Decimal(repr(ours.open_position["entry_price"])) == Decimal(repr(float(open_trades[0].entry_price)))
