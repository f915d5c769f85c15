"""Backtest use cases shared by the CLI and the HTTP surfaces.

``run_backtest(config, bars)`` runs synchronously and returns a :class:`BacktestResult`
whose ``to_dict()`` is JSON-ready. ``plot_backtest(result, path)`` writes an equity and
drawdown PNG when matplotlib is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from quantdesk.analytics.metrics import drawdown
from quantdesk.engine.backtest import BacktestConfig, BacktestResult, fast_path_blocker
from quantdesk.engine.backtest import run_backtest as _run
from quantdesk.engine.strategy import list_strategies

__all__ = ["BacktestConfig", "BacktestResult", "run_backtest", "plot_backtest", "available_strategies",
           "fast_path_blocker"]


def run_backtest(config: BacktestConfig, bars: pd.DataFrame,
                 progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Run one deterministic backtest of ``config`` over ``bars`` (open high low close volume, UTC index).

    Raises InvalidInputError (a 4xx) for unknown strategies' parameters, malformed bars or a
    config the chosen mode cannot run; NotFoundError (code STRATEGY_NOT_FOUND) for an
    unknown strategy.
    """
    return _run(config, bars, progress=progress)


def available_strategies() -> list[dict[str, Any]]:
    """Every registered strategy with its parameter schema."""
    return list_strategies()


def plot_backtest(result: BacktestResult, path: str | Path, *, title: str | None = None) -> Path | None:
    """Write an equity curve over a drawdown panel to ``path`` (PNG); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = Path(path)
    equity = result.equity
    dd = drawdown(equity.to_numpy()) * 100
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(equity.index, equity.to_numpy(), color="tab:blue", linewidth=1)
    ax1.set_ylabel("equity")
    ax1.set_title(title or f"{result.config.strategy} on {result.config.symbol} "
                  f"({result.metrics.get('total_return_pct', 0):.2f}%)")
    ax1.grid(alpha=0.3)
    for i in result.entry_index:
        ax1.axvline(equity.index[i], color="tab:green", alpha=0.08, linewidth=0.8)
    ax2.fill_between(equity.index, dd, 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown %")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
