"""The compiled fast path produces exactly the event path's trades and final equity."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.backtest import BacktestConfig, run_backtest


def random_walk(n: int, seed: int, decimals: int = 2, vol: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate(([50.0], close[:-1] * np.exp(rng.normal(0, vol / 3, n - 1))))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0},
                      index=pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC"))
    return df.round(decimals)


def goog() -> pd.DataFrame:
    backtesting_test = pytest.importorskip("backtesting.test")
    df = backtesting_test.GOOG.copy()
    df.index = df.index.tz_localize("UTC")
    return df


DATASETS = {
    "walk_a": lambda: random_walk(3_000, 1),
    "walk_b": lambda: random_walk(5_000, 7, decimals=4, vol=0.02),
    "walk_c": lambda: random_walk(2_000, 99, decimals=1, vol=0.005),
    "goog": goog,
}

CASES = [
    ("sma_cross", {"fast": 10, "slow": 20}, {}),
    ("sma_cross", {"fast": 3, "slow": 50}, {"commission": Decimal("0.001")}),
    ("sma_cross", {"fast": 10, "slow": 20, "allow_short": True}, {"liquidation": False}),
    ("sma_cross", {"fast": 5, "slow": 15, "size_fraction": Decimal("0.5")}, {"leverage": 3, "liquidation": False}),
    ("momentum", {}, {}),
    ("momentum", {"rsi_period": 7, "overbought": 65, "oversold": 35, "allow_short": True},
     {"liquidation": False, "commission": Decimal("0.0004")}),
    ("momentum", {"rsi_period": 21}, {"commission": Decimal(0), "initial_balance": Decimal("2500.5")}),
]


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize(("strategy", "params", "extra"), CASES)
def test_fast_path_equals_event_path(dataset, strategy, params, extra):
    bars = DATASETS[dataset]()
    kwargs = {"commission": Decimal("0.002"), **extra}
    event = run_backtest(BacktestConfig(strategy, params, symbol="TESTUSD", currency="USD", mode="event", **kwargs),
                         bars)
    fast = run_backtest(BacktestConfig(strategy, params, symbol="TESTUSD", currency="USD", mode="fast", **kwargs),
                        bars)
    assert event.mode == "event" and fast.mode == "fast"
    assert len(event.trades) > 0
    assert fast.trades == event.trades
    assert fast.final_equity == event.final_equity
    assert fast.entry_index == event.entry_index and fast.exit_index == event.exit_index
    assert fast.open_position == event.open_position
    np.testing.assert_allclose(fast.equity.to_numpy(), event.equity.to_numpy(), rtol=1e-9)


def test_fast_path_refuses_configs_it_cannot_model():
    bars = random_walk(500, 3)
    with pytest.raises(InvalidInputError) as err:
        run_backtest(BacktestConfig("sma_cross", {}, symbol="TESTUSD", mode="fast", slippage_bps=Decimal(5)), bars)
    assert err.value.field == "mode"


def test_auto_mode_uses_the_fast_path_when_possible():
    bars = random_walk(500, 3)
    assert run_backtest(BacktestConfig("sma_cross", {}, symbol="TESTUSD", mode="auto"), bars).mode == "fast"
    assert run_backtest(BacktestConfig("sma_cross", {}, symbol="TESTUSD", mode="auto", slippage_ticks=1),
                        bars).mode == "event"
