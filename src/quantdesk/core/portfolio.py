"""Fills, positions, balances, the account and round-trip trades.

Accounting is margin style (how perpetual futures settle, and how kernc/backtesting.py
keeps its books): a fill moves no notional out of the wallet; the wallet changes only by
fees and realized P&L, and ``equity = wallet + unrealized P&L``. A spot-like backtest is the
special case ``leverage = 1``.

A position keeps its entries as FIFO lots, so every close is matched against exact entry
prices and no average price ever needs rounding. Margin is isolated: each position's margin
is its entry notional divided by its leverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.money import MONEY_CONTEXT, ONE, ZERO
from quantdesk.core.orders import OrderSide

_C = MONEY_CONTEXT


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is PositionSide.LONG else -1

    @classmethod
    def of(cls, side: OrderSide) -> PositionSide:
        return cls.LONG if side is OrderSide.BUY else cls.SHORT


class ExitReason(StrEnum):
    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    LIQUIDATION = "liquidation"
    MANUAL = "manual"
    END_OF_DATA = "end_of_data"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``quantity`` (base units) at ``price`` (quote per base), ``fee`` in ``fee_asset``."""

    id: str
    order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    filled_at: datetime
    liquidity: Liquidity = Liquidity.TAKER
    reason: ExitReason | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidInputError(f"fill quantity must be positive, got {self.quantity}", field="quantity")
        if self.price <= 0:
            raise InvalidInputError(f"fill price must be positive, got {self.price}", field="price")
        if self.fee < 0 and self.liquidity is Liquidity.TAKER:
            raise InvalidInputError(f"taker fee cannot be negative, got {self.fee}", field="fee")

    @property
    def notional(self) -> Decimal:
        return _C.multiply(self.quantity, self.price)

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is OrderSide.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A closed trade: one entry lot (or the closed part of it) matched with one exit fill.

    ``pnl`` is net of both commissions; ``pnl_pct`` is ``pnl`` over the entry notional, in
    percent. ``initial_risk`` (quote units) is set when the entry carried a stop loss, and
    gives ``r_multiple``.
    """

    id: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_at: datetime
    exit_at: datetime
    entry_fee: Decimal
    exit_fee: Decimal
    strategy: str | None = None
    exit_reason: ExitReason = ExitReason.SIGNAL
    initial_risk: Decimal | None = None
    leverage: int = 1

    @property
    def gross_pnl(self) -> Decimal:
        return _C.multiply(self.side.sign * self.quantity, _C.subtract(self.exit_price, self.entry_price))

    @property
    def commission(self) -> Decimal:
        return _C.add(self.entry_fee, self.exit_fee)

    @property
    def pnl(self) -> Decimal:
        return _C.subtract(self.gross_pnl, self.commission)

    @property
    def entry_notional(self) -> Decimal:
        return _C.multiply(self.quantity, self.entry_price)

    @property
    def pnl_pct(self) -> Decimal:
        return _C.divide(_C.multiply(self.pnl, 100), self.entry_notional)

    @property
    def duration(self) -> timedelta:
        return self.exit_at - self.entry_at

    @property
    def r_multiple(self) -> Decimal | None:
        if not self.initial_risk:
            return None
        return _C.divide(self.pnl, self.initial_risk)


@dataclass(slots=True)
class Lot:
    """An open entry: ``quantity`` left of a fill at ``price``, with the entry fee not yet attributed."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    opened_at: datetime
    initial_risk_per_unit: Decimal | None = None


def liquidation_price(side: PositionSide, entry_price: Decimal, leverage: int,
                      maintenance_margin_rate: Decimal) -> Decimal | None:
    """Price at which an isolated position's margin falls to the maintenance margin, unrounded.

    Long: margin + q(P − E) = mmr·q·P  ⇒  P = E(1 − 1/L)/(1 − mmr).
    Short: margin + q(E − P) = mmr·q·P ⇒  P = E(1 + 1/L)/(1 + mmr).
    Returns None when the position cannot be liquidated (long at leverage 1 with mmr 0).
    """
    inv = _C.divide(ONE, Decimal(leverage))
    if side is PositionSide.LONG:
        price = _C.divide(_C.multiply(entry_price, ONE - inv), ONE - maintenance_margin_rate)
        return price if price > 0 else None
    return _C.divide(_C.multiply(entry_price, ONE + inv), ONE + maintenance_margin_rate)


@dataclass(slots=True)
class Position:
    """An open position in one symbol: FIFO lots on one side, isolated margin at ``leverage``.

    Apply fills with :meth:`apply_fill`; a fill on the opposite side closes lots first (each
    closed lot becomes a :class:`RoundTrip`) and any remainder opens the other side.
    """

    id: str
    symbol: str
    side: PositionSide
    leverage: int
    opened_at: datetime
    lots: list[Lot] = field(default_factory=list)
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    net_filled: Decimal = ZERO  # signed sum of every fill applied, for the quantity invariant
    updated_at: datetime | None = None

    @property
    def quantity(self) -> Decimal:
        total = ZERO
        for lot in self.lots:
            total = _C.add(total, lot.quantity)
        return total

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.side.sign

    @property
    def cost(self) -> Decimal:
        """Entry notional of the open lots (sum of quantity × entry price), exact."""
        total = ZERO
        for lot in self.lots:
            total = _C.add(total, _C.multiply(lot.quantity, lot.price))
        return total

    @property
    def entry_price(self) -> Decimal:
        """Quantity-weighted entry price, unrounded (quantize to the tick for display)."""
        qty = self.quantity
        return _C.divide(self.cost, qty) if qty else ZERO

    @property
    def margin(self) -> Decimal:
        """Isolated margin: entry notional / leverage."""
        return _C.divide(self.cost, Decimal(self.leverage))

    @property
    def is_open(self) -> bool:
        return bool(self.lots)

    def notional(self, mark: Decimal) -> Decimal:
        return _C.multiply(self.quantity, mark)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.side.sign * _C.subtract(_C.multiply(self.quantity, mark), self.cost)

    def unrealized_pnl_pct(self, mark: Decimal) -> Decimal:
        """Unrealized P&L over margin, in percent (what a futures venue shows as ROE)."""
        margin = self.margin
        return _C.divide(_C.multiply(self.unrealized_pnl(mark), 100), margin) if margin else ZERO

    def liquidation_price(self, maintenance_margin_rate: Decimal) -> Decimal | None:
        if not self.lots:
            return None
        return liquidation_price(self.side, self.entry_price, self.leverage, maintenance_margin_rate)

    def add(self, fill: Fill, *, stop_loss: Decimal | None = None) -> None:
        """Open or increase on this position's side."""
        if PositionSide.of(fill.side) is not self.side:
            raise InvalidInputError(f"fill side {fill.side.value} does not add to a {self.side.value} position",
                                    field="side")
        risk = abs(_C.subtract(fill.price, stop_loss)) if stop_loss is not None else None
        self.lots.append(Lot(fill.quantity, fill.price, fill.fee, fill.filled_at, risk))
        self.fees_paid = _C.add(self.fees_paid, fill.fee)
        self.net_filled = _C.add(self.net_filled, fill.signed_quantity)
        self.updated_at = fill.filled_at

    def reduce(self, fill: Fill, quantity: Decimal, fee: Decimal, next_id: object) -> list[RoundTrip]:
        """Close ``quantity`` (≤ open quantity) FIFO at the fill's price; return one RoundTrip per lot touched.

        ``fee`` is the part of the fill's fee that belongs to this close; it is spread over the
        lots pro rata with the remainder on the last one, so the parts sum exactly.
        ``next_id`` is a zero-argument callable returning the next round-trip id.
        """
        if PositionSide.of(fill.side) is self.side:
            raise InvalidInputError("a closing fill must be on the opposite side", field="side")
        if quantity <= 0 or quantity > self.quantity:
            raise InvalidInputError(f"cannot close {quantity} of a {self.quantity} position", field="quantity")
        trips: list[RoundTrip] = []
        left = quantity
        fee_left = fee
        while left > 0:
            lot = self.lots[0]
            take = min(lot.quantity, left)
            left = _C.subtract(left, take)
            exit_fee = fee_left if left == 0 else _C.divide(_C.multiply(fee, take), quantity)
            fee_left = _C.subtract(fee_left, exit_fee)
            if take == lot.quantity:
                entry_fee = lot.fee
                self.lots.pop(0)
            else:
                entry_fee = _C.divide(_C.multiply(lot.fee, take), lot.quantity)
                lot.fee = _C.subtract(lot.fee, entry_fee)
                lot.quantity = _C.subtract(lot.quantity, take)
            trip = RoundTrip(
                id=next_id(),  # type: ignore[operator]
                symbol=self.symbol,
                side=self.side,
                quantity=take,
                entry_price=lot.price,
                exit_price=fill.price,
                entry_at=lot.opened_at,
                exit_at=fill.filled_at,
                entry_fee=entry_fee,
                exit_fee=exit_fee,
                strategy=self.strategy,
                exit_reason=fill.reason or ExitReason.SIGNAL,
                initial_risk=(_C.multiply(lot.initial_risk_per_unit, take)
                              if lot.initial_risk_per_unit else None),
                leverage=self.leverage,
            )
            self.realized_pnl = _C.add(self.realized_pnl, trip.gross_pnl)
            trips.append(trip)
        self.fees_paid = _C.add(self.fees_paid, fee)
        self.net_filled = _C.add(self.net_filled, -quantity if self.side is PositionSide.LONG else quantity)
        self.updated_at = fill.filled_at
        return trips


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset's balance as the API shows it: ``total = free + locked``."""

    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return _C.add(self.free, self.locked)


@dataclass(slots=True)
class Account:
    """Wallet balances per asset plus open positions, settled in ``currency``.

    ``wallet`` changes only by deposits, fees and realized P&L; ``equity`` adds unrealized
    P&L at the given marks. All amounts are exact Decimals in ``currency``.
    """

    currency: str
    wallets: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    deposited: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    reserved: dict[str, Decimal] = field(default_factory=dict)  # order id -> margin held by a resting order

    @property
    def wallet(self) -> Decimal:
        return self.wallets.get(self.currency, ZERO)

    def deposit(self, amount: Decimal, asset: str | None = None) -> None:
        if amount <= 0:
            raise InvalidInputError(f"deposit must be positive, got {amount}", field="amount")
        asset = asset or self.currency
        self.wallets[asset] = _C.add(self.wallets.get(asset, ZERO), amount)
        if asset == self.currency:
            self.deposited = _C.add(self.deposited, amount)

    def credit(self, amount: Decimal) -> None:
        self.wallets[self.currency] = _C.add(self.wallet, amount)

    def unrealized_pnl(self, marks: dict[str, Decimal]) -> Decimal:
        total = ZERO
        for symbol, position in self.positions.items():
            total = _C.add(total, position.unrealized_pnl(marks[symbol]))
        return total

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        """Wallet plus unrealized P&L at ``marks`` (symbol → price)."""
        return _C.add(self.wallet, self.unrealized_pnl(marks))

    @property
    def used_margin(self) -> Decimal:
        total = ZERO
        for position in self.positions.values():
            total = _C.add(total, position.margin)
        return total

    @property
    def reserved_margin(self) -> Decimal:
        total = ZERO
        for amount in self.reserved.values():
            total = _C.add(total, amount)
        return total

    def available_margin(self, marks: dict[str, Decimal]) -> Decimal:
        """Equity not tied up as position margin or held by resting orders, floored at zero."""
        free = _C.subtract(_C.subtract(self.equity(marks), self.used_margin), self.reserved_margin)
        return max(free, ZERO)

    def margin_level(self, marks: dict[str, Decimal]) -> Decimal | None:
        """Equity / used margin in percent; None with no margin in use."""
        used = self.used_margin
        return _C.divide(_C.multiply(self.equity(marks), 100), used) if used else None

    def balances(self) -> list[Balance]:
        """Wallet balances; the settlement asset shows margin in use as ``locked``."""
        out = []
        for asset, amount in sorted(self.wallets.items()):
            locked = _C.add(self.used_margin, self.reserved_margin) if asset == self.currency else ZERO
            locked = min(locked, max(amount, ZERO))
            out.append(Balance(asset, _C.subtract(amount, locked), locked))
        return out
