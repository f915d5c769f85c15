"""Benchmark: SMA(10/20) crossover over 1,000,000 one-minute bars.

Runs quantdesk's event path, quantdesk's fast path and kernc/backtesting.py on the same
deterministic random walk and prints bars/s, the ratios and the trade counts. The fast path's
result keeps its trades as integer arrays (metrics are computed from them) and builds the
Decimal ``RoundTrip``/``Fill`` lists on first access; that one-off cost is printed separately.
backtesting.py runs on a 200,000-bar prefix (its per-bar cost is flat, so bars/s compare);
its trade count is compared with ours on that same prefix.

    .venv/bin/python bench/bench_backtest.py [--bars N] [--ref-bars M]
"""

from __future__ import annotations

import argparse
import time
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd

from quantdesk.engine.backtest import BacktestConfig, run_backtest

CASH = Decimal(1_000_000)
COMMISSION = Decimal("0.0005")  # per side


def random_walk(n: int, seed: int = 42) -> pd.DataFrame:
    """Deterministic 1m OHLCV random walk on a 0.0001 tick, starting at 100 (a fine tick keeps exact SMA ties, where float noise decides a cross, rare)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.0008, n)
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    wiggle = np.abs(rng.normal(0.0, 0.0004, (2, n)))
    high = np.maximum(open_, close) * (1 + wiggle[0])
    low = np.minimum(open_, close) * (1 - wiggle[1])
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": rng.integers(1, 1000, n).astype(float)},
                      index=pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC"))
    return df.round(4)


def run_ours(df: pd.DataFrame, mode: str):
    config = BacktestConfig("sma_cross", {"fast": 10, "slow": 20}, symbol="SIMUSD", currency="USD",
                            initial_balance=CASH, commission=COMMISSION, tick_size=Decimal("0.0001"),
                            mode=mode)
    t0 = time.perf_counter()
    result = run_backtest(config, df)
    return time.perf_counter() - t0, result


def run_reference(df: pd.DataFrame):
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    data = df.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, SmaCross, cash=float(CASH), commission=float(COMMISSION))
        t0 = time.perf_counter()
        stats = bt.run()
    return time.perf_counter() - t0, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--ref-bars", type=int, default=200_000)
    args = parser.parse_args()
    df = random_walk(args.bars)
    print(f"data: {len(df):,} 1m bars, deterministic random walk (seed 42); cash {CASH}, "
          f"commission {COMMISSION} per side, whole units on full equity")

    run_ours(df.iloc[:5_000], "fast")  # compile numba once, outside the timing
    ev_t, ev = run_ours(df, "event")
    fa_t, fa = run_ours(df, "fast")
    n = len(df)
    t0 = time.perf_counter()
    fast_trades = len(fa.trades)  # the fast path builds its exact Decimal trades on first access
    build_t = time.perf_counter() - t0
    print(f"quantdesk event path : {n / ev_t:>12,.0f} bars/s  ({ev_t:6.2f} s, {len(ev.trades)} trades, "
          f"final equity {ev.final_equity:.2f})")
    print(f"quantdesk fast path  : {n / fa_t:>12,.0f} bars/s  ({fa_t:6.2f} s, {fast_trades} trades, "
          f"final equity {fa.final_equity:.2f}; +{build_t:.2f} s to build its Decimal trades and fills "
          f"when first read, {n / (fa_t + build_t):,.0f} bars/s with them)")
    print(f"event == fast        : trades {ev.trades == fa.trades}, final equity {ev.final_equity == fa.final_equity}")

    ref_n = min(args.ref_bars, n)
    prefix = df.iloc[:ref_n]
    if ref_n < n:
        print(f"backtesting.py is measured on a {ref_n:,}-bar prefix (1M bars would take minutes)")
    rf_t, rf = run_reference(prefix)
    rf_rate = ref_n / rf_t
    _, ours_prefix = run_ours(prefix, "event")
    print(f"backtesting.py 0.6.6 : {rf_rate:>12,.0f} bars/s  ({rf_t:6.2f} s, {int(rf['# Trades'])} trades "
          f"on the prefix, final equity {rf['Equity Final [$]']:.2f})")
    print(f"ratio event/backtesting.py : {n / ev_t / rf_rate:6.1f}x  (target >= 3x)")
    print(f"ratio fast/backtesting.py  : {n / fa_t / rf_rate:6.1f}x  (target >= 50x)")
    ref_trades = int(rf["# Trades"])
    ours_trades = len(ours_prefix.trades)
    diff = abs(ours_trades - ref_trades) / max(ref_trades, 1) * 100
    print(f"trade count on the prefix: quantdesk {ours_trades}, backtesting.py {ref_trades} "
          f"({diff:.2f}% apart, target <= 1%); final equity quantdesk {ours_prefix.final_equity:.2f}")


if __name__ == "__main__":
    main()
