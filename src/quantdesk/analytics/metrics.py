"""Performance metrics over an equity curve and a list of closed trades (floats, vectorised).

Conventions: returns and drawdowns are fractions unless a key ends in ``_pct``; ratios are
annualised with ``periods_per_year`` (bars per year); the risk-free rate is zero. Undefined
values (no trades, no losing trade, flat equity) are ``None`` rather than inf or NaN, so the
result serialises to JSON as it is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365.25 * 86_400


def _clean(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Drawdown at each point as a non-positive fraction of the running peak."""
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size == 0:
        return equity
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        if peak[0] > 0 and peak[-1] > 0:
            # the running peak never falls (NaN, once there, stays), so it is positive throughout
            dd = np.divide(equity, peak, out=peak)
            dd -= 1.0
            return dd
        return np.where(peak > 0, equity / peak - 1.0, 0.0)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough loss as a positive fraction (0.25 = 25%)."""
    return _max_drawdown(drawdown(equity))


def max_drawdown_duration(equity: np.ndarray) -> int:
    """Longest stretch, in bars, spent below a previous peak."""
    return _max_drawdown_duration(drawdown(equity))


def _max_drawdown(dd: np.ndarray) -> float:
    return float(-dd.min()) if dd.size else 0.0


def _max_drawdown_duration(dd: np.ndarray) -> int:
    # the longest run below the peak: the widest gap between consecutive bars at a peak
    at_peak = np.flatnonzero(~(dd < 0))
    if at_peak.size == dd.size:
        return 0
    edges = np.concatenate(([-1], at_peak, [dd.size]))
    return int(np.max(np.diff(edges)) - 1)


def equity_metrics(equity: np.ndarray, *, periods_per_year: float, years: float | None = None) -> dict[str, Any]:
    """Return, CAGR, volatility, Sharpe, Sortino, Calmar and drawdowns of an equity curve."""
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size == 0 or equity[0] <= 0:
        return {"total_return_pct": 0.0, "cagr_pct": None, "volatility_pct": None, "sharpe": None,
                "sortino": None, "calmar": None, "max_drawdown_pct": 0.0, "max_drawdown_duration_bars": 0}
    total = equity[-1] / equity[0] - 1.0
    if years is None:
        years = (equity.size - 1) / periods_per_year if periods_per_year else 0.0
    cagr = (equity[-1] / equity[0]) ** (1.0 / years) - 1.0 if years > 0 and equity[-1] > 0 else None
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.diff(equity) / equity[:-1]
    rets = rets[np.isfinite(rets)]
    sharpe = sortino = vol = None
    if rets.size > 1:
        sd = rets.std(ddof=1)
        vol = sd * math.sqrt(periods_per_year)
        if sd > 0:
            sharpe = rets.mean() / sd * math.sqrt(periods_per_year)
        downside = np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))
        if downside > 0:
            sortino = rets.mean() / downside * math.sqrt(periods_per_year)
    dd = drawdown(equity)  # once: it is the costliest pass over a long curve
    mdd = _max_drawdown(dd)
    calmar = cagr / mdd if cagr is not None and mdd > 0 else None
    return {
        "total_return_pct": _clean(total * 100),
        "cagr_pct": _clean(cagr * 100) if cagr is not None else None,
        "volatility_pct": _clean(vol * 100) if vol is not None else None,
        "sharpe": _clean(sharpe),
        "sortino": _clean(sortino),
        "calmar": _clean(calmar),
        "max_drawdown_pct": _clean(mdd * 100),
        "max_drawdown_duration_bars": _max_drawdown_duration(dd),
    }


def trade_metrics(pnl: np.ndarray, *, pnl_pct: np.ndarray | None = None, duration_s: np.ndarray | None = None,
                  r_multiples: np.ndarray | None = None, commission: np.ndarray | None = None) -> dict[str, Any]:
    """Win rate, profit factor, expectancy, averages and extremes of closed trades' net P&L."""
    pnl = np.asarray(pnl, dtype=np.float64)
    n = int(pnl.size)
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    gross_win = float(wins.sum())
    gross_loss = float(-losses.sum())
    out: dict[str, Any] = {
        "total_trades": n,
        "winning_trades": int(wins.size),
        "losing_trades": int(losses.size),
        "win_rate_pct": _clean(wins.size / n * 100) if n else None,
        "profit_factor": _clean(gross_win / gross_loss) if gross_loss > 0 else None,
        "expectancy": _clean(pnl.mean()) if n else None,
        "total_pnl": float(pnl.sum()),
        "avg_win": _clean(wins.mean()) if wins.size else None,
        "avg_loss": _clean(losses.mean()) if losses.size else None,
        "largest_win": _clean(wins.max()) if wins.size else None,
        "largest_loss": _clean(losses.min()) if losses.size else None,
        "avg_trade_pct": None,
        "avg_duration_s": None,
        "avg_r_multiple": None,
        "total_r": None,
        "total_commission": float(np.sum(commission)) if commission is not None else None,
    }
    if pnl_pct is not None and n:
        out["avg_trade_pct"] = _clean(np.mean(pnl_pct))
    if duration_s is not None and n:
        out["avg_duration_s"] = _clean(np.mean(duration_s))
    if r_multiples is not None:
        r = np.asarray(r_multiples, dtype=np.float64)
        r = r[np.isfinite(r)]
        if r.size:
            out["avg_r_multiple"] = _clean(r.mean())
            out["total_r"] = _clean(r.sum())
    return out


def format_duration(seconds: float | None) -> str | None:
    """Render seconds the way the Scalper reference does: ``2h 15m``, ``3d 4h``, ``45s``."""
    if seconds is None:
        return None
    s = int(round(seconds))
    days, s = divmod(s, 86_400)
    hours, s = divmod(s, 3_600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{s}s"
