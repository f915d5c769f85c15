"""Typed replies of the Crypto Scalper API. Money fields are Decimal (parsed exactly from JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T", bound="Model")


def _parse_time(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


@dataclass
class Model:
    """Base: build from a reply dict, keeping unknown fields in ``extra``."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: _parse_time(v) for k, v in data.items() if k in names}
        obj = cls(**known)
        obj.extra = {k: v for k, v in data.items() if k not in names}
        return obj


@dataclass
class AssetBalance(Model):
    asset: str = ""
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    total: Decimal = Decimal(0)


@dataclass
class Balance(Model):
    balances: list[AssetBalance] = field(default_factory=list)
    total_equity_usd: Decimal = Decimal(0)
    available_margin: Decimal = Decimal(0)
    used_margin: Decimal = Decimal(0)
    margin_level: Decimal | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Balance:
        obj = super().from_dict(data)
        obj.balances = [AssetBalance.from_dict(b) for b in data.get("balances", [])]
        return obj


@dataclass
class Account(Model):
    account_id: str = ""
    exchange: str = ""
    account_type: str = ""
    status: str = ""
    created_at: datetime | str | None = None


@dataclass
class Position(Model):
    id: str = ""
    symbol: str = ""
    side: str = ""
    quantity: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    current_price: Decimal | None = None
    leverage: Decimal | None = None
    margin: Decimal | None = None
    unrealized_pnl: Decimal = Decimal(0)
    unrealized_pnl_pct: Decimal | None = None
    liquidation_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    opened_at: datetime | str | None = None


@dataclass
class Order(Model):
    order_id: str = ""
    symbol: str = ""
    side: str = ""
    type: str = ""
    quantity: Decimal = Decimal(0)
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    status: str = ""
    created_at: datetime | str | None = None
    updated_at: datetime | str | None = None
    cancelled_at: datetime | str | None = None


@dataclass
class CloseResult(Model):
    order_id: str = ""
    symbol: str = ""
    side: str = ""
    quantity: Decimal = Decimal(0)
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    status: str = ""


@dataclass
class Trade(Model):
    id: str = ""
    symbol: str = ""
    side: str = ""
    entry_price: Decimal = Decimal(0)
    exit_price: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    pnl: Decimal = Decimal(0)
    pnl_pct: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    strategy: str | None = None
    entry_time: datetime | str | None = None
    exit_time: datetime | str | None = None
    duration_seconds: int | None = None


@dataclass
class PnL(Model):
    period: str = ""
    date: str | None = None
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    total_pnl: Decimal = Decimal(0)
    trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    win_rate: Decimal = Decimal(0)
    profit_factor: Decimal | None = None
    largest_win: Decimal | None = None
    largest_loss: Decimal | None = None
    avg_win: Decimal | None = None
    avg_loss: Decimal | None = None
    by_strategy: list[dict[str, Any]] = field(default_factory=list)
    by_symbol: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BotStatus(Model):
    status: str = ""
    trading_enabled: bool = False
    paper_trading: bool = True
    uptime_seconds: int = 0
    started_at: datetime | str | None = None
    strategies: list[dict[str, Any]] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Strategy(Model):
    name: str = ""
    type: str = ""
    enabled: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | str | None = None


@dataclass
class Backtest(Model):
    backtest_id: str = ""
    status: str = ""
    progress: int | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
