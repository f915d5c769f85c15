"""Built-in job types: small, deterministic functions that run unchanged on every executor.

Each is ``fn(ctx, **params) -> dict`` at module level so a worker process or a Ray task can
import it by dotted path. Their results are plain JSON (floats, ints, strings, lists).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from quantdesk.services.job_ports import JobContext, JobType


def demo_backtest(ctx: JobContext, seed: int = 7, n_bars: int = 20_000, fast: int = 10, slow: int = 50,
                  start_price: float = 100.0, fee_rate: float = 0.001) -> dict:
    """Backtest a moving-average crossover on a seeded random walk (long or flat, fees per change).

    Deterministic: the same parameters give the same result on any executor. Returns the
    final equity (start 1.0), total return, number of position changes, an annualised Sharpe
    ratio of bar returns and a checksum of the whole equity curve.
    """
    if not 1 <= fast < slow:
        raise ValueError(f"fast ({fast}) must be at least 1 and below slow ({slow})")
    if n_bars <= slow:
        raise ValueError(f"n_bars ({n_bars}) must exceed slow ({slow})")
    ctx.progress(5, f"Generating {n_bars} bars (seed {seed})...")
    rng = np.random.default_rng(seed)
    log_returns = rng.normal(0.0002, 0.01, n_bars)
    close = start_price * np.exp(np.cumsum(log_returns))
    ctx.progress(30, f"Computing SMA({fast}) and SMA({slow})...")
    kernel_fast = np.ones(fast) / fast
    kernel_slow = np.ones(slow) / slow
    sma_fast = np.convolve(close, kernel_fast, mode="full")[: n_bars]
    sma_slow = np.convolve(close, kernel_slow, mode="full")[: n_bars]
    signal = np.zeros(n_bars)
    signal[slow - 1:] = (sma_fast[slow - 1:] > sma_slow[slow - 1:]).astype(float)
    ctx.progress(60, "Simulating trades...")
    # the position decided at bar i's close earns bar i+1's return
    bar_returns = np.diff(close) / close[:-1]
    position = signal[:-1]
    changes = np.abs(np.diff(np.concatenate(([0.0], position))))
    strategy_returns = position * bar_returns - changes * fee_rate
    equity = np.cumprod(1.0 + strategy_returns)
    ctx.progress(90, "Computing statistics...")
    std = float(strategy_returns.std())
    sharpe = float(strategy_returns.mean() / std * np.sqrt(365 * 24)) if std > 0 else 0.0
    running_max = np.maximum.accumulate(equity)
    max_drawdown = float((equity / running_max - 1.0).min())
    checksum = hashlib.sha256(np.round(equity, 12).tobytes()).hexdigest()
    return {
        "final_equity": float(equity[-1]),
        "total_return": float(equity[-1] - 1.0),
        "trades": int(changes.sum()),
        "sharpe": sharpe,
        "max_drawdown": max_drawdown,
        "bars": n_bars,
        "equity_checksum": checksum,
    }


def sleep_steps(ctx: JobContext, steps: int = 10, step_s: float = 0.1, fail_at: int | None = None) -> dict:
    """Wait ``steps`` times ``step_s`` seconds, reporting progress after each (a diagnostic job).

    With ``fail_at`` it raises at that step, to exercise the failure path.
    """
    if steps < 1 or step_s < 0:
        raise ValueError(f"steps ({steps}) must be >= 1 and step_s ({step_s}) >= 0")
    for i in range(1, steps + 1):
        if fail_at is not None and i == fail_at:
            raise RuntimeError(f"failed at step {i} as asked")
        time.sleep(step_s)
        ctx.progress(100.0 * i / steps, f"Step {i} of {steps}")
    return {"steps": steps}


BUILTIN_TYPES: tuple[JobType, ...] = (
    JobType("demo_backtest", "quantdesk.services.jobtypes:demo_backtest", cpu_cores=0.5, ram_gb=0.25,
            idempotent=True, summary="Deterministic SMA-crossover backtest on a seeded random walk"),
    JobType("sleep", "quantdesk.services.jobtypes:sleep_steps", cpu_cores=0.1, ram_gb=0.1,
            admin_only=True, summary="Diagnostic: wait in steps, reporting progress"),
)
