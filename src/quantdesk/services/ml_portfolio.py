"""The ML backend's portfolio: the caller's paper account as TradingService keeps it (one ledger, no copy).

Values are exact Decimals in the account currency; ``history`` rebuilds each day's closing
value from the initial balance and the closed trades (net of fees), ending at today's equity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.money import MONEY_CONTEXT as _C
from quantdesk.core.portfolio import RoundTrip
from quantdesk.services.pnl import Period
from quantdesk.services.trading import TradingService

ZERO = Decimal(0)
MAX_DAYS = 3650
PAGE = 1000


@dataclass(frozen=True, slots=True)
class PortfolioPosition:
    symbol: str  # ML spelling, BTC_USDT
    side: str
    quantity: Decimal
    entry_price: Decimal
    current_price: Decimal
    pnl: Decimal
    pnl_pct: Decimal
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Portfolio:
    total_value: Decimal
    cash: Decimal
    positions: list[PortfolioPosition]
    daily_pnl: Decimal
    daily_pnl_pct: Decimal
    total_pnl: Decimal
    total_pnl_pct: Decimal
    currency: str


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return _C.divide(_C.multiply(part, 100), whole) if whole else ZERO


class PortfolioService:
    """Read the caller's paper account (equity, cash, positions with P&L) and its value over time."""

    def __init__(self, trading: TradingService, now=lambda: datetime.now(UTC)):
        self._trading = trading
        self._now = now

    async def portfolio(self, user_id: int) -> Portfolio:
        """Equity, free cash, open positions at current prices, today's and all-time P&L (percent of the base)."""
        account = await self._trading.account(user_id)
        balance = await self._trading.balance(user_id)
        held = await self._trading.positions(user_id)
        today = await self._trading.pnl(user_id, Period.DAILY)
        cash = sum((b.free for b in balance.balances if b.asset == account.currency), ZERO)
        positions = [
            PortfolioPosition(self._trading.instrument(v.position.symbol).id.spell("underscore"),
                              v.position.side.value, v.position.quantity, v.position.entry_price, v.mark,
                              v.unrealized_pnl, v.unrealized_pnl_pct, v.position.opened_at)
            for v in held.positions
        ]
        daily = today.total_pnl
        total = _C.subtract(balance.equity, account.initial_balance)
        return Portfolio(balance.equity, cash, positions, daily, _pct(daily, _C.subtract(balance.equity, daily)),
                         total, _pct(total, account.initial_balance), account.currency)

    async def history(self, user_id: int, days: int = 30) -> list[tuple[datetime, Decimal]]:
        """One point per UTC day for the last ``days`` days: the value at that day's end (today: equity now)."""
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInputError(f"days {days} must be between 1 and {MAX_DAYS}", field="days")
        account = await self._trading.account(user_id)
        balance = await self._trading.balance(user_id)
        today = self._now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=days - 1)
        trades: list[RoundTrip] = []
        offset = 0
        while True:
            page = await self._trading.trades(user_id, limit=PAGE, offset=offset)
            trades.extend(page.trades)
            offset += len(page.trades)
            if not page.trades or offset >= page.total_count:
                break
        trades.sort(key=lambda t: t.exit_at)
        value = account.initial_balance
        i = 0
        points: list[tuple[datetime, Decimal]] = []
        for n in range(days):
            day = first + timedelta(days=n)
            end = day + timedelta(days=1)
            while i < len(trades) and trades[i].exit_at < end:
                value = _C.add(value, trades[i].pnl)
                i += 1
            points.append((day, balance.equity if day == today else value))
        return points
