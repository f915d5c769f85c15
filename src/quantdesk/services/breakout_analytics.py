"""R-multiple analytics of an account's closed trades, and rolling figures of the engine's cycles.

A trade's R is its realized P&L (net of fees) over its initial risk (entry-to-stop distance ×
quantity, kept on the ledger's lots from the entry's stop loss). Trades entered without a stop
have no R: they count in ``totalTrades``, the win rate and the profit factor, not in the R
figures. Floats are fine here: nothing computed in this module becomes money.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantdesk.core.portfolio import RoundTrip


@dataclass(frozen=True, slots=True)
class EquityPoint:
    at: datetime
    value: float
    cumulative_r: float


def equity_curve(trades: Sequence[RoundTrip], initial_balance: Decimal, opened_at: datetime) -> list[EquityPoint]:
    """The account's equity after each closed trade (oldest first), from ``initial_balance`` at ``opened_at``."""
    value = initial_balance
    cumulative = 0.0
    points = [EquityPoint(opened_at, float(initial_balance), 0.0)]
    for t in sorted(trades, key=lambda t: (t.exit_at, t.id)):
        value += t.pnl
        if t.r_multiple is not None:
            cumulative += float(t.r_multiple)
        points.append(EquityPoint(t.exit_at, float(value), round(cumulative, 6)))
    return points


def _streaks(signs: Iterable[bool]) -> tuple[int, int]:
    best_win = best_loss = win = loss = 0
    for won in signs:
        win, loss = (win + 1, 0) if won else (0, loss + 1)
        best_win, best_loss = max(best_win, win), max(best_loss, loss)
    return best_win, best_loss


def max_drawdown_r(r_values: Sequence[float]) -> float:
    """The largest fall of cumulative R from a previous peak (0 when it never fell), a positive number."""
    peak = cumulative = worst = 0.0
    for r in r_values:
        cumulative += r
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


def performance(trades: Sequence[RoundTrip]) -> dict[str, Any]:
    """Win rate (fraction), average R (expectancy), per-trade Sharpe of R, max drawdown in R, profit factor, streaks."""
    ordered = sorted(trades, key=lambda t: (t.exit_at, t.id))
    pnls = [float(t.pnl) for t in ordered]
    r_values = [float(t.r_multiple) for t in ordered if t.r_multiple is not None]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    avg_r = sum(r_values) / len(r_values) if r_values else 0.0
    sharpe = 0.0
    if len(r_values) > 1:
        std = math.sqrt(sum((r - avg_r) ** 2 for r in r_values) / (len(r_values) - 1))
        sharpe = avg_r / std if std > 0 else 0.0
    gross_loss = -sum(losses)
    # no losing trade yet: an infinite factor, which JSON cannot carry (null)
    profit_factor = round(sum(wins) / gross_loss, 6) if gross_loss > 0 else (None if wins else 0.0)
    best_win, best_loss = _streaks(p > 0 for p in pnls)
    return {
        "totalTrades": len(ordered),
        "winRate": round(len(wins) / len(ordered), 6) if ordered else 0.0,
        "avgR": round(avg_r, 6),
        "expectancyR": round(avg_r, 6),
        "sharpeRatio": round(sharpe, 6),
        "maxDrawdownR": round(max_drawdown_r(r_values), 6),
        "profitFactor": profit_factor,
        "consecutiveWins": best_win,
        "consecutiveLosses": best_loss,
        "totalR": round(sum(r_values), 6),
    }


def daily_r(trades: Iterable[RoundTrip], since: datetime) -> Decimal:
    """Sum of the R of trades closed at or after ``since`` (exact)."""
    return sum((t.r_multiple for t in trades if t.exit_at >= since and t.r_multiple is not None), Decimal(0))


def trailing_losses(trades: Sequence[RoundTrip], since: datetime | None) -> int:
    """Losing trades in a row at the end of ``trades`` (oldest first), counting only those closed after ``since``."""
    count = 0
    for t in reversed(trades):
        if since is not None and t.exit_at < since:
            break
        if t.pnl >= 0:
            break
        count += 1
    return count


class Series:
    """A rolling window of numbers with count, mean, min and max (the reference's metric summaries)."""

    def __init__(self, size: int = 1000):
        self.values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, value: float) -> None:
        self.values.append(value)
        self.count += 1

    def summary(self) -> dict[str, float | int]:
        v = self.values
        if not v:
            return {"count": 0, "mean": 0.0, "min": 0.0, "max": 0.0}
        return {"count": self.count, "mean": round(sum(v) / len(v), 6), "min": round(min(v), 6),
                "max": round(max(v), 6)}


__all__ = ["EquityPoint", "Series", "daily_r", "equity_curve", "max_drawdown_r", "performance", "trailing_losses"]
