"""Events: what happened in the engine (frozen). Rejections are events with a reason code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from quantdesk.core.orders import OrderSide, OrderStatus, OrderType
from quantdesk.core.portfolio import Fill, PositionSide, RoundTrip


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    at: datetime
    order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The broker or margin check refused the order; ``code`` is a stable error code."""

    at: datetime
    order_id: str
    symbol: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderDenied:
    """Risk limits refused the order before it reached the broker."""

    at: datetime
    order_id: str
    symbol: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderFilled:
    at: datetime
    fill: Fill
    status: OrderStatus
    filled_quantity: Decimal


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    at: datetime
    order_id: str
    symbol: str
    reason: str = "cancelled"


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """An IOC/FOK order (or the rest of one) could not fill at once."""

    at: datetime
    order_id: str
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class PositionOpened:
    at: datetime
    position_id: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class PositionChanged:
    at: datetime
    position_id: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal


@dataclass(frozen=True, slots=True)
class PositionClosed:
    at: datetime
    position_id: str
    symbol: str
    side: PositionSide
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class TradeClosed:
    at: datetime
    trade: RoundTrip


@dataclass(frozen=True, slots=True)
class PositionLiquidated:
    at: datetime
    position_id: str
    symbol: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    at: datetime
    asset: str
    wallet: Decimal
    delta: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class RiskHalted:
    """Trading stopped opening positions (daily loss, consecutive losses, kill switch)."""

    at: datetime
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class LeverageChanged:
    at: datetime
    symbol: str
    leverage: int


Event = (
    OrderAccepted | OrderRejected | OrderDenied | OrderFilled | OrderCancelled | OrderExpired
    | PositionOpened | PositionChanged | PositionClosed | TradeClosed | PositionLiquidated
    | BalanceChanged | RiskHalted | LeverageChanged
)
