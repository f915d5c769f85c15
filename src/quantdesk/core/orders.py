"""Orders and their lifecycle.

The lifecycle is a table (:data:`TRANSITIONS`): every status lists the statuses it may move
to, and :meth:`Order.transition` refuses anything else with :class:`IllegalTransitionError`.

    new ──► accepted ──► partially_filled ──► filled
     │         │  │  │          │  │
     │         │  │  └► filled  │  └► cancelled / expired
     │         │  └► cancelled / expired
     │         └► rejected   (a resting stop that triggers and then fails the margin check)
     └► rejected            (validation, risk or margin refused it on arrival)

An order is never filled without having been accepted first, so ``new → filled`` is illegal
even for a market order that fills at once: the engine records ``accepted`` and then
``filled`` in the same command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from quantdesk.core.errors import ConflictError, InvalidInputError
from quantdesk.core.money import MONEY_CONTEXT, ZERO


class _ParsableEnum(StrEnum):
    @classmethod
    def parse(cls, value: object, *, field: str) -> _ParsableEnum:
        """Resolve ``value`` case-insensitively or raise InvalidInputError listing the allowed values."""
        text = str(getattr(value, "value", value)).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInputError(f"{field} {value!r} is not one of {allowed}", field=field)


class OrderSide(_ParsableEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(_ParsableEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"


class TimeInForce(_ParsableEnum):
    """GTC rests until filled or cancelled; IOC fills what it can now; FOK fills all now or nothing."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(_ParsableEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


S = OrderStatus
#: The only legal moves; a status with no successors is terminal.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.ACCEPTED, S.REJECTED}),
    # accepted → rejected: a resting stop triggered but failed the margin check at that moment
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
del S


class IllegalTransitionError(ConflictError):
    """The order's current status does not allow the requested move (see ``TRANSITIONS``)."""

    code = "ILLEGAL_ORDER_TRANSITION"


def check_transition(current: OrderStatus, target: OrderStatus, *, order_id: str = "") -> None:
    """Raise IllegalTransitionError unless ``current → target`` is a row of the table."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (terminal)"
        raise IllegalTransitionError(
            f"order {order_id or '?'} cannot move from {current.value} to {target.value}; "
            f"allowed: {allowed}",
            details={"order_id": order_id, "from": current.value, "to": target.value},
        )


@dataclass(slots=True, eq=False)
class Order:
    """One order and its fill progress; prices and quantities are exact Decimals in quote/base units.

    Construction validates the shape (positive quantity, a ``price`` for limit types, a
    ``stop_price`` for stop types, bracket prices on the right side) and raises
    InvalidInputError naming the field. Status changes only through :meth:`transition`
    and :meth:`record_fill`.
    """

    id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal | None
    created_at: datetime
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    tag: str | None = None
    client_order_id: str | None = None
    equity_fraction: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    updated_at: datetime | None = None
    triggered: bool = False
    reason_code: str | None = None
    reason: str | None = None
    history: list[tuple[OrderStatus, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise InvalidInputError("created_at must be timezone-aware (UTC)", field="created_at")
        if self.quantity is None:
            if self.equity_fraction is None or not (0 < self.equity_fraction <= 1):
                raise InvalidInputError("quantity is required (or an equity_fraction in (0, 1])", field="quantity")
        elif self.quantity <= 0:
            raise InvalidInputError(f"quantity must be positive, got {self.quantity}", field="quantity")
        needs_price = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
        if needs_price and (self.price is None or self.price <= 0):
            raise InvalidInputError(f"price is required and positive for {self.type.value} orders", field="price")
        if not needs_price and self.price is not None:
            raise InvalidInputError(f"price is not allowed for {self.type.value} orders", field="price")
        if needs_stop and (self.stop_price is None or self.stop_price <= 0):
            raise InvalidInputError(
                f"stop_price is required and positive for {self.type.value} orders", field="stop_price"
            )
        if not needs_stop and self.stop_price is not None:
            raise InvalidInputError(f"stop_price is not allowed for {self.type.value} orders", field="stop_price")
        ref = self.price if needs_price else self.stop_price
        for name in ("stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInputError(f"{name} must be positive, got {value}", field=name)
        if ref is not None:
            sl, tp = self.stop_loss, self.take_profit
            if self.side is OrderSide.BUY:
                bad_sl = sl is not None and sl >= ref
                bad_tp = tp is not None and tp <= ref
            else:
                bad_sl = sl is not None and sl <= ref
                bad_tp = tp is not None and tp >= ref
            if bad_sl:
                raise InvalidInputError(
                    f"stop_loss {sl} must be on the losing side of {ref} for a {self.side.value} order",
                    field="stop_loss",
                )
            if bad_tp:
                raise InvalidInputError(
                    f"take_profit {tp} must be on the winning side of {ref} for a {self.side.value} order",
                    field="take_profit",
                )
        if not self.history:
            self.history.append((self.status, self.created_at))
        if self.updated_at is None:
            self.updated_at = self.created_at

    @property
    def remaining_quantity(self) -> Decimal:
        if self.quantity is None:
            return ZERO
        return self.quantity - self.filled_quantity

    def size(self, quantity: Decimal) -> None:
        """Fix the quantity of an equity-fraction order when it executes (before its first fill)."""
        if self.filled_quantity:
            raise InvalidInputError(f"order {self.id} already has fills; it cannot be resized", field="quantity")
        if quantity <= 0:
            raise InvalidInputError(f"quantity must be positive, got {quantity}", field="quantity")
        self.quantity = quantity

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Volume-weighted fill price, unrounded (quantize to the instrument's tick to display)."""
        if not self.filled_quantity:
            return None
        return MONEY_CONTEXT.divide(self.filled_notional, self.filled_quantity)

    @property
    def is_stop(self) -> bool:
        return self.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)

    def transition(self, target: OrderStatus, at: datetime, *, reason_code: str | None = None,
                   reason: str | None = None) -> None:
        """Move to ``target`` or raise IllegalTransitionError (the order is left unchanged)."""
        check_transition(self.status, target, order_id=self.id)
        self.status = target
        self.updated_at = at
        self.history.append((target, at))
        if reason_code is not None:
            self.reason_code = reason_code
            self.reason = reason

    def record_fill(self, quantity: Decimal, price: Decimal, fee: Decimal, at: datetime) -> None:
        """Add a fill, moving to ``partially_filled`` or ``filled``; refuses overfills."""
        if quantity <= 0:
            raise InvalidInputError(f"fill quantity must be positive, got {quantity}", field="quantity")
        if quantity > self.remaining_quantity:
            raise InvalidInputError(
                f"fill of {quantity} exceeds the remaining {self.remaining_quantity} of order {self.id}",
                field="quantity",
            )
        target = OrderStatus.FILLED if quantity == self.remaining_quantity else OrderStatus.PARTIALLY_FILLED
        check_transition(self.status, target, order_id=self.id)
        self.filled_quantity = MONEY_CONTEXT.add(self.filled_quantity, quantity)
        self.filled_notional = MONEY_CONTEXT.add(self.filled_notional, MONEY_CONTEXT.multiply(quantity, price))
        self.fees = MONEY_CONTEXT.add(self.fees, fee)
        self.transition(target, at)
