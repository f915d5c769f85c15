"""What the trading service returns: views over the ledger at current prices (exact Decimals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from quantdesk.core.money import MONEY_CONTEXT
from quantdesk.core.orders import Order
from quantdesk.core.portfolio import Balance, Position, RoundTrip
from quantdesk.services.pnl import Period, PnlGroup, TradeStats

_C = MONEY_CONTEXT


@dataclass(frozen=True, slots=True)
class PositionView:
    position: Position
    mark: Decimal
    unrealized_pnl: Decimal
    unrealized_pnl_pct: Decimal
    liquidation_price: Decimal | None


@dataclass(frozen=True, slots=True)
class PositionsView:
    positions: list[PositionView]
    total_unrealized_pnl: Decimal
    total_margin_used: Decimal


@dataclass(frozen=True, slots=True)
class BalanceView:
    balances: list[Balance]
    equity: Decimal
    available_margin: Decimal
    used_margin: Decimal
    margin_level: Decimal | None


@dataclass(frozen=True, slots=True)
class TradePage:
    trades: list[RoundTrip]
    total_count: int
    stats: TradeStats


@dataclass(frozen=True, slots=True)
class CloseResult:
    order: Order
    realized_pnl: Decimal
    trades: list[RoundTrip]


@dataclass(frozen=True, slots=True)
class LeverageView:
    symbol: str
    leverage: int
    max_leverage: int


@dataclass(frozen=True, slots=True)
class PnlReport:
    period: Period
    start: date | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    stats: TradeStats
    by_strategy: list[PnlGroup]
    by_symbol: list[PnlGroup]

    @property
    def total_pnl(self) -> Decimal:
        return _C.add(self.realized_pnl, self.unrealized_pnl)


@dataclass(frozen=True, slots=True)
class BotStatusView:
    running: bool
    paper: bool
    started_at: datetime | None
    uptime_s: int
    strategies: list[tuple[str, bool, int]]  # name, enabled, signals today
    daily: TradeStats


@dataclass(frozen=True, slots=True)
class BacktestView:
    """A backtest job: ``status`` queued/running/completed/failed/cancelled, ``progress`` 0–100."""

    id: str
    status: str
    progress: float
    result: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class BotStopped:
    open_positions: int
    closed: list[CloseResult]
