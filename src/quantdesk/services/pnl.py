"""Profit-and-loss statistics over closed trades, exact in Decimal.

Every figure is computed from :class:`~quantdesk.core.portfolio.RoundTrip` values, whose
``pnl`` is net of both commissions, so a summary always equals the sum of the trades it
summarises. Percentages are in percent (62.5 means 62.5%).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from quantdesk.core.money import MONEY_CONTEXT, ZERO
from quantdesk.core.portfolio import RoundTrip

_C = MONEY_CONTEXT
MANUAL = "manual"  # the strategy name of trades placed by hand (API orders and closes)
_PCT = Decimal("0.01")
_RATIO = Decimal("0.0001")


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    ALL = "all"


def period_start(period: Period, now: datetime) -> datetime | None:
    """UTC start of the period containing ``now``: today 00:00, Monday 00:00, the 1st; None for all."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return day
    if period is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTHLY:
        return day.replace(day=1)
    return None


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Counts and sums of closed trades; ratios are None when undefined (no trades, no losses)."""

    trades: int
    winning_trades: int
    losing_trades: int
    total_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    win_rate: Decimal | None
    profit_factor: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    avg_return_pct: Decimal | None


def trade_stats(trades: Iterable[RoundTrip]) -> TradeStats:
    """Summarise ``trades`` (net P&L): win rate in percent rounded to 0.01, profit factor to 0.0001."""
    n = wins = losses = 0
    total = gross_profit = gross_loss = pct_sum = ZERO
    largest_win: Decimal | None = None
    largest_loss: Decimal | None = None
    for t in trades:
        pnl = t.pnl
        n += 1
        total = _C.add(total, pnl)
        pct_sum = _C.add(pct_sum, t.pnl_pct)
        if pnl > 0:
            wins += 1
            gross_profit = _C.add(gross_profit, pnl)
            largest_win = pnl if largest_win is None else max(largest_win, pnl)
        elif pnl < 0:
            losses += 1
            gross_loss = _C.add(gross_loss, pnl)
            largest_loss = pnl if largest_loss is None else min(largest_loss, pnl)
    return TradeStats(
        trades=n,
        winning_trades=wins,
        losing_trades=losses,
        total_pnl=total,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        win_rate=_round(_C.divide(_C.multiply(Decimal(wins), 100), Decimal(n)), _PCT) if n else None,
        profit_factor=_round(_C.divide(gross_profit, -gross_loss), _RATIO) if gross_loss else None,
        largest_win=largest_win,
        largest_loss=largest_loss,
        avg_win=_C.divide(gross_profit, Decimal(wins)) if wins else None,
        avg_loss=_C.divide(gross_loss, Decimal(losses)) if losses else None,
        avg_return_pct=_round(_C.divide(pct_sum, Decimal(n)), _RATIO) if n else None,
    )


@dataclass(frozen=True, slots=True)
class PnlGroup:
    """Net P&L and trade count of one strategy or symbol."""

    name: str
    pnl: Decimal
    trades: int


def group_pnl(trades: Iterable[RoundTrip], key: Callable[[RoundTrip], str]) -> list[PnlGroup]:
    """Net P&L per ``key(trade)``, largest P&L first (ties by name)."""
    sums: dict[str, list] = {}
    for t in trades:
        entry = sums.setdefault(key(t), [ZERO, 0])
        entry[0] = _C.add(entry[0], t.pnl)
        entry[1] += 1
    groups = [PnlGroup(name, pnl, count) for name, (pnl, count) in sums.items()]
    return sorted(groups, key=lambda g: (-g.pnl, g.name))


def strategy_of(trade: RoundTrip) -> str:
    """The strategy a trade is booked under (``manual`` for orders placed by hand)."""
    return trade.strategy or MANUAL


def _round(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_EVEN, context=_C)
