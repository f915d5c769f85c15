"""The ledger: applies fills to positions and balances exactly (Decimal, no rounding).

It is the only writer of the :class:`~quantdesk.core.portfolio.Account`. A fill debits its
fee from the wallet, closes opposite lots FIFO (crediting their gross P&L and producing
round trips) and opens or adds the remainder.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from quantdesk.core.events import (
    BalanceChanged,
    Event,
    PositionChanged,
    PositionClosed,
    PositionOpened,
    TradeClosed,
)
from quantdesk.core.money import MONEY_CONTEXT, ZERO
from quantdesk.core.portfolio import Account, Fill, Position, PositionSide, RoundTrip

_C = MONEY_CONTEXT


class IdSequence:
    """Deterministic ids ``<prefix>_<n>`` per prefix (same run, same ids)."""

    def __init__(self) -> None:
        self._n: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        n = self._n.get(prefix, 0) + 1
        self._n[prefix] = n
        return f"{prefix}_{n}"

    def factory(self, prefix: str) -> Callable[[], str]:
        return lambda: self.next(prefix)

    def counters(self) -> dict[str, int]:
        """The highest number used per prefix (a copy)."""
        return dict(self._n)

    def advance(self, counters: dict[str, int]) -> None:
        """Continue after ``counters`` (prefix → highest used): never hand out those ids again."""
        for prefix, n in counters.items():
            if n > self._n.get(prefix, 0):
                self._n[prefix] = n

    def reset(self, counters: dict[str, int]) -> None:
        """Set the counters exactly (rolling back a failed command)."""
        self._n = dict(counters)


class Ledger:
    """Positions, balances, fills and closed trades of one account."""

    def __init__(self, currency: str, initial_balance: Decimal, ids: IdSequence | None = None):
        self.account = Account(currency)
        if initial_balance > 0:
            self.account.deposit(initial_balance)
        self.ids = ids or IdSequence()
        self.fills: list[Fill] = []
        self.trades: list[RoundTrip] = []
        # (index, symbol, wallet, signed quantity, signed cost) after each fill: the equity curve's skeleton
        self.snapshots: list[tuple[int, str, Decimal, Decimal, Decimal]] = []
        self.index = 0
        self._trip_id = self.ids.factory("trade")

    def position(self, symbol: str) -> Position | None:
        return self.account.positions.get(symbol)

    def signed_quantity(self, symbol: str) -> Decimal:
        p = self.account.positions.get(symbol)
        return p.signed_quantity if p is not None else ZERO

    def apply_fill(
        self,
        fill: Fill,
        *,
        leverage: int = 1,
        strategy: str | None = None,
        stop_loss: Decimal | None = None,
        emit: bool = True,
    ) -> tuple[list[Event], list[Position], list[RoundTrip]]:
        """Book ``fill``; return the events, the positions it touched and the trades it closed.

        ``emit=False`` books exactly the same but builds no events (the list comes back empty):
        for a caller that would drop them unread.
        """
        acct = self.account
        events: list[Event] = []
        touched: list[Position] = []
        trips: list[RoundTrip] = []
        at = fill.filled_at
        if fill.fee:
            acct.credit(-fill.fee)
            acct.fees_paid = _C.add(acct.fees_paid, fill.fee)
            if emit:
                events.append(BalanceChanged(at, acct.currency, acct.wallet, -fill.fee, "fee"))
        position = acct.positions.get(fill.symbol)
        remaining = fill.quantity
        open_fee = fill.fee
        if position is not None and PositionSide.of(fill.side) is not position.side:
            closing = min(remaining, position.quantity)
            close_fee = fill.fee if closing == remaining else _C.divide(_C.multiply(fill.fee, closing), remaining)
            open_fee = _C.subtract(fill.fee, close_fee)
            before = position.realized_pnl
            trips = position.reduce(fill, closing, close_fee, self._trip_id)
            gross = _C.subtract(position.realized_pnl, before)
            acct.credit(gross)
            acct.realized_pnl = _C.add(acct.realized_pnl, gross)
            if emit:
                events.append(BalanceChanged(at, acct.currency, acct.wallet, gross, "realized_pnl"))
                events.extend(TradeClosed(at, t) for t in trips)
            self.trades.extend(trips)
            touched.append(position)
            remaining = _C.subtract(remaining, closing)
            if not position.is_open:
                del acct.positions[fill.symbol]
                if emit:
                    events.append(PositionClosed(at, position.id, position.symbol, position.side,
                                                 position.realized_pnl))
                position = None
            elif emit:
                events.append(PositionChanged(at, position.id, position.symbol, position.side,
                                              position.quantity, position.entry_price))
        if remaining > 0:
            part = fill if remaining == fill.quantity else Fill(
                fill.id, fill.order_id, fill.symbol, fill.side, remaining, fill.price, open_fee,
                fill.fee_asset, fill.filled_at, fill.liquidity, fill.reason)
            if position is None:
                position = Position(self.ids.next("pos"), fill.symbol, PositionSide.of(fill.side), leverage,
                                    at, strategy=strategy)
                acct.positions[fill.symbol] = position
                position.add(part, stop_loss=stop_loss)
                if emit:
                    events.append(PositionOpened(at, position.id, position.symbol, position.side,
                                                 position.quantity, position.entry_price, leverage))
            else:
                position.add(part, stop_loss=stop_loss)
                if emit:
                    events.append(PositionChanged(at, position.id, position.symbol, position.side,
                                                  position.quantity, position.entry_price))
            touched.append(position)
        self.fills.append(fill)
        p = acct.positions.get(fill.symbol)
        if p is None:
            self.snapshots.append((self.index, fill.symbol, acct.wallet, ZERO, ZERO))
        else:
            self.snapshots.append((self.index, fill.symbol, acct.wallet, p.signed_quantity, p.cost * p.side.sign))
        return events, touched, trips

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        return self.account.equity(marks)

    def check_invariant(self, marks: dict[str, Decimal]) -> None:
        """Raise AssertionError-like ValueError unless deposits + realized + unrealized − fees = equity."""
        acct = self.account
        lhs = _C.subtract(_C.add(_C.add(acct.deposited, acct.realized_pnl), acct.unrealized_pnl(marks)),
                          acct.fees_paid)
        if lhs != acct.equity(marks):
            raise ValueError(f"ledger out of balance: {lhs} != {acct.equity(marks)}")

    def now_marks(self, symbol: str, price: Decimal) -> dict[str, Decimal]:
        return {symbol: price}


def closing_quantity(position: Position | None, side_is_buy: bool) -> Decimal:
    """How much of an order on this side would close the existing position."""
    if position is None:
        return ZERO
    if (position.side is PositionSide.LONG) == side_is_buy:
        return ZERO
    return position.quantity


