"""The strategy-backtest job type: one deterministic backtest run by the job service's executor.

The function is module level (``fn(ctx, **params) -> dict``) so a worker process or a Ray task
imports it by its dotted path. The bars travel in the job's parameters as plain columns
(open times in ms since the epoch, prices as floats), so the job needs nothing from the server.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.engine.backtest import BacktestConfig, run_backtest
from quantdesk.services.job_ports import JobContext, JobType

TARGET = "quantdesk.services.backtest_jobs:strategy_backtest"
JOB_TYPE = JobType("strategy_backtest", TARGET, cpu_cores=1.0, ram_gb=0.5, idempotent=True,
                   summary="Backtest a registered strategy over one symbol's bars")


def bars_to_columns(frame: pd.DataFrame) -> dict[str, list]:
    """Encode a bars frame (UTC index of open times) as JSON-ready columns for the job's parameters."""
    index = pd.DatetimeIndex(frame.index)
    return {
        "t": (index.as_unit("ns").asi8 // 1_000_000).tolist(),
        **{c: frame[c].astype(np.float64).tolist() for c in ("open", "high", "low", "close", "volume")},
    }


def _frame(bars: dict[str, list]) -> pd.DataFrame:
    index = pd.to_datetime(np.asarray(bars["t"], dtype=np.int64), unit="ms", utc=True)
    return pd.DataFrame({c: np.asarray(bars[c], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")},
                        index=index)


def strategy_backtest(ctx: JobContext, *, strategy: str, symbol: str, bars: dict[str, list],
                      parameters: dict[str, Any] | None = None, initial_balance: str = "10000", leverage: int = 1,
                      commission: str = "0", currency: str = "USDT", lot_size: str = "1",
                      timeframe: str = "1h") -> dict[str, Any]:
    """Run ``strategy`` over ``bars`` and return the result's figures (floats, percent where named ``_pct``).

    Money arrives as decimal strings so the configuration is exact. Deterministic: the same
    parameters give the same result on any executor.
    """
    ctx.progress(5, f"Preparing {len(bars.get('t', []))} {timeframe} bars of {symbol}...")
    config = BacktestConfig(strategy=strategy, params=dict(parameters or {}), symbol=symbol,
                            initial_balance=Decimal(initial_balance), leverage=int(leverage),
                            commission=Decimal(commission), lot_size=Decimal(lot_size), currency=currency)
    frame = _frame(bars)
    ctx.progress(20, f"Running {strategy} on {symbol}...")
    result = run_backtest(config, frame)
    ctx.progress(95, "Computing statistics...")
    return {
        "strategy": strategy,
        "symbol": symbol,
        "timeframe": timeframe,
        "bars": result.bars,
        "initial_balance": float(config.initial_balance),
        "final_equity": float(result.final_equity),
        "metrics": result.metrics,
    }
