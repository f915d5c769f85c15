from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from engine_kit import make_kernel

from quantdesk.analytics.metrics import equity_metrics, max_drawdown, trade_metrics
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.market import BookTop
from quantdesk.core.orders import OrderStatus
from quantdesk.engine.backtest import BacktestConfig, infer_tick_size, run_backtest
from quantdesk.engine.risk import RiskLimits
from quantdesk.engine.strategy import create_strategy, discover_strategies, get_strategy, list_strategies
from quantdesk.services.backtests import run_backtest as service_run_backtest


def walk(n=1500, seed=5):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.003,
                       "low": np.minimum(open_, close) * 0.997, "close": close, "volume": 10.0},
                      index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"))
    return df.round(2)


def test_registry_lists_built_ins_with_parameter_schema():
    names = {s["name"] for s in list_strategies()}
    assert {"momentum", "sma_cross", "breakout", "orderbook_imbalance"} <= names
    momentum = get_strategy("momentum").schema()
    assert momentum["defaults"] == {"rsi_period": 14, "overbought": 70.0, "oversold": 30.0, "allow_short": False,
                                    "size_fraction": "1"}
    with pytest.raises(NotFoundError) as err:
        get_strategy("nope")
    assert err.value.code == "STRATEGY_NOT_FOUND"


def test_parameters_are_coerced_and_bounded():
    assert create_strategy("momentum", {"rsi_period": "21"}).params["rsi_period"] == 21
    with pytest.raises(InvalidInputError) as err:
        create_strategy("momentum", {"rsi_period": 1})
    assert err.value.field == "parameters.rsi_period"
    with pytest.raises(InvalidInputError):
        create_strategy("sma_cross", {"fast": 30, "slow": 20})
    with pytest.raises(InvalidInputError):
        create_strategy("sma_cross", {"speed": 3})


def test_user_folder_strategies_are_discovered(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from quantdesk.engine.strategy import Strategy, register_strategy\n"
        "@register_strategy('user_noop')\nclass Noop(Strategy):\n    pass\n")
    assert "user_noop" in discover_strategies(tmp_path)


def test_backtest_is_deterministic_and_serialisable():
    bars = walk()
    config = BacktestConfig("breakout", {"entry_period": 30}, symbol="TESTUSD", commission=Decimal("0.001"),
                            slippage_bps=Decimal(2), risk=RiskLimits())
    a, b = run_backtest(config, bars), service_run_backtest(config, bars)
    assert a.trades == b.trades and a.final_equity == b.final_equity and len(a.trades) > 3
    d = a.to_dict()
    import json
    json.dumps(d)
    assert d["trades"][0]["entry_time"].endswith("+00:00") and d["metrics"]["total_trades"] == len(a.trades)
    assert all(t.r_multiple is not None for t in a.trades if t.exit_reason.value == "stop_loss")


def test_backtest_market_orders_fill_at_the_next_open():
    bars = walk()
    result = run_backtest(BacktestConfig("sma_cross", {}, symbol="TESTUSD"), bars)
    for t, i in zip(result.trades, result.entry_index, strict=True):
        assert t.entry_price == Decimal(str(bars["open"].iloc[i]))


def test_backtest_refuses_naive_index_and_missing_columns():
    bars = walk(100)
    with pytest.raises(InvalidInputError):
        run_backtest(BacktestConfig("sma_cross", {}), bars.tz_localize(None))
    with pytest.raises(InvalidInputError):
        run_backtest(BacktestConfig("sma_cross", {}), bars.drop(columns=["low"]))


def test_close_at_end_books_the_open_position_as_a_trade():
    bars = walk()
    open_end = run_backtest(BacktestConfig("momentum", {}, symbol="TESTUSD"), bars)
    closed = run_backtest(BacktestConfig("momentum", {}, symbol="TESTUSD", close_at_end=True), bars)
    if open_end.open_position is not None:
        assert len(closed.trades) == len(open_end.trades) + 1
        assert closed.trades[-1].exit_reason.value == "end_of_data"
    assert closed.final_equity == open_end.final_equity


def test_tick_size_inference():
    assert infer_tick_size(np.array([100.01, 99.5])) == Decimal("0.01")
    assert infer_tick_size(np.array([100.0, 101.0])) == Decimal(1)


def test_metrics_on_known_curves():
    assert max_drawdown(np.array([100, 120, 90, 130.0])) == pytest.approx(0.25)
    m = equity_metrics(np.array([100.0, 110.0, 121.0]), periods_per_year=2)
    assert m["total_return_pct"] == pytest.approx(21.0) and m["cagr_pct"] == pytest.approx(21.0)
    t = trade_metrics(np.array([10.0, -5.0, 20.0, -5.0]))
    assert t["win_rate_pct"] == 50 and t["profit_factor"] == 3 and t["expectancy"] == 5
    assert t["largest_loss"] == -5 and t["avg_win"] == 15


def test_orderbook_imbalance_buys_a_bid_heavy_book_and_exits_on_reversal():
    kernel, _, _ = make_kernel()
    strategy = create_strategy("orderbook_imbalance", {"quantity": "0.01", "cooldown_s": 0})
    kernel.add_strategy("BTCUSDT", strategy)
    strategy.on_start(kernel.markets["BTCUSDT"].ctx)
    D = Decimal
    at = datetime(2024, 1, 15, 10, tzinfo=UTC)
    bid_heavy = BookTop(at, ((D("49999"), D(5)), (D("49998"), D(4))), ((D("50001"), D(1)),))
    kernel.on_book("BTCUSDT", bid_heavy)
    assert kernel.position("BTCUSDT").quantity == D("0.01")
    ask_heavy = BookTop(at + timedelta(seconds=1), ((D("49999"), D(1)),), ((D("50001"), D(6)),))
    kernel.on_book("BTCUSDT", ask_heavy)
    assert kernel.position("BTCUSDT") is None  # closed on the reversal, not flipped
    assert all(o.status is OrderStatus.FILLED for o in kernel.orders.values())


def test_backtest_reports_progress_up_to_every_bar():
    import numpy as np
    import pandas as pd

    from quantdesk.engine import replay
    from quantdesk.services.backtests import BacktestConfig, run_backtest

    n = 3 * replay.PROGRESS_EVERY + 5
    rng = np.random.default_rng(1)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    bars = pd.DataFrame({"open": close, "high": close + 0.2, "low": close - 0.2, "close": close,
                         "volume": np.ones(n)}, index=pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"))
    for mode in ("event", "fast"):
        seen: list[tuple[int, int]] = []
        run_backtest(BacktestConfig(strategy="sma_cross", params={"fast": 10, "slow": 20}, mode=mode,
                                    tick_size="0.0001"), bars, progress=lambda d, t, seen=seen: seen.append((d, t)))
        done = [d for d, _ in seen]
        assert done == sorted(done) and seen[-1] == (n, n) and all(t == n for _, t in seen), (mode, seen)
        if mode == "event":
            assert len(seen) >= 2  # reported along the way, not only at the end
