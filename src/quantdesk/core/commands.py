"""Commands: what a caller asks the trading engine to do (frozen, validated on construction)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.orders import OrderSide, OrderType, TimeInForce


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Place an order.

    Give ``quantity`` (base units) or ``equity_fraction`` (0 < f ≤ 1: size at fill time as
    ``floor(available margin × leverage × f / (price × (1 + fee rate)))`` lots, the way
    kernc/backtesting.py sizes fractional orders). ``stop_loss``/``take_profit`` attach to
    the position the order opens.
    """

    symbol: str
    side: OrderSide
    type: OrderType = OrderType.MARKET
    quantity: Decimal | None = None
    equity_fraction: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    tag: str | None = None
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        if (self.quantity is None) == (self.equity_fraction is None):
            raise InvalidInputError("give exactly one of quantity and equity_fraction", field="quantity")
        if self.quantity is not None and self.quantity <= 0:
            raise InvalidInputError(f"quantity must be positive, got {self.quantity}", field="quantity")
        if self.equity_fraction is not None and not (0 < self.equity_fraction <= 1):
            raise InvalidInputError(
                f"equity_fraction must be in (0, 1], got {self.equity_fraction}", field="equity_fraction"
            )


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel a resting order."""

    order_id: str


@dataclass(frozen=True, slots=True)
class ClosePosition:
    """Close all (``quantity=None``) or part of the position in ``symbol`` with a reduce-only market order."""

    symbol: str
    quantity: Decimal | None = None
    strategy: str | None = None

    def __post_init__(self) -> None:
        if self.quantity is not None and self.quantity <= 0:
            raise InvalidInputError(f"quantity must be positive, got {self.quantity}", field="quantity")


@dataclass(frozen=True, slots=True)
class CloseAllPositions:
    """Close every open position at market."""


@dataclass(frozen=True, slots=True)
class SetLeverage:
    """Set the leverage used for new positions in ``symbol``."""

    symbol: str
    leverage: int

    def __post_init__(self) -> None:
        if self.leverage < 1:
            raise InvalidInputError(f"leverage must be at least 1, got {self.leverage}", field="leverage")


@dataclass(frozen=True, slots=True)
class PanicExit:
    """Cancel every order, close every position at market and engage the kill switch."""

    reason: str = "panic exit"


@dataclass(frozen=True, slots=True)
class SetKillSwitch:
    """Engage (refuse every new opening order) or release the kill switch."""

    engaged: bool
    reason: str = "kill switch"


Command = SubmitOrder | CancelOrder | ClosePosition | CloseAllPositions | SetLeverage | PanicExit | SetKillSwitch
