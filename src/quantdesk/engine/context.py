"""The strategy context: what the kernel hands a market's strategies (see ``engine.strategy.StrategyContext``).

One :class:`MarketContext` per market, created by :meth:`Kernel.add_strategy`; its ``i`` is
moved by the kernel before each ``on_bar``. Orders go straight into the kernel's submit path
(the same one :meth:`Kernel.handle` uses), inside the batch of the bar being processed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantdesk.core.commands import SubmitOrder
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.instruments import Instrument
from quantdesk.core.market import BookTop
from quantdesk.core.money import ONE, ZERO
from quantdesk.core.orders import OrderSide
from quantdesk.core.portfolio import Position
from quantdesk.engine.risk import size_for_risk
from quantdesk.engine.strategy import BarData

if TYPE_CHECKING:  # the kernel builds contexts; importing it at run time would make a cycle
    from quantdesk.engine.kernel import Kernel, _Market

_BUY = OrderSide.BUY
_SELL = OrderSide.SELL


class MarketContext:
    """The StrategyContext the kernel hands to strategies of one market."""

    __slots__ = ("_k", "_m", "i", "_symbol")

    def __init__(self, kernel: Kernel, market: _Market):
        self._k = kernel
        self._m = market
        self.i = 0
        self._symbol = market.instrument.symbol

    @property
    def now(self) -> datetime:
        return self._k._now()

    @property
    def data(self) -> BarData:
        assert self._m.data is not None
        return self._m.data

    @property
    def symbol(self) -> str:
        return self._symbol

    @property
    def instrument(self) -> Instrument:
        return self._m.instrument

    @property
    def book(self) -> BookTop | None:
        return self._m.book

    @property
    def position(self) -> Position | None:
        return self._k.ledger.account.positions.get(self._symbol)

    @property
    def position_quantity(self) -> Decimal:
        p = self._k.ledger.account.positions.get(self._symbol)
        return p.signed_quantity if p is not None else ZERO

    @property
    def last_price(self) -> Decimal | None:
        return self._k.mark(self._symbol)

    def equity(self) -> Decimal:
        return self._k.equity()

    def _strategy_name(self) -> str | None:
        strategies = self._m.strategies
        return strategies[0].name if strategies else None

    def _order(self, side: OrderSide, quantity: Decimal | None, fraction: Decimal | None = None,
               **kwargs: Any) -> str | None:
        if quantity is None and fraction is None:
            fraction = ONE
        cmd = SubmitOrder(symbol=self._symbol, side=side, quantity=quantity, equity_fraction=fraction,
                          strategy=self._strategy_name(), **kwargs)
        order = self._k._submit(cmd)
        return order.id

    def buy(self, quantity: Decimal | None = None, fraction: Decimal | None = None, **kwargs: Any) -> str | None:
        """Buy ``quantity`` (or ``fraction`` of available margin; all of it by default). kwargs as SubmitOrder."""
        return self._order(_BUY, quantity, fraction, **kwargs)

    def sell(self, quantity: Decimal | None = None, fraction: Decimal | None = None, **kwargs: Any) -> str | None:
        return self._order(_SELL, quantity, fraction, **kwargs)

    def close_position(self, quantity: Decimal | None = None) -> str | None:
        order = self._k._close_position(self._symbol, quantity, self._strategy_name(), required=False)
        return order.id if order is not None else None

    def cancel(self, order_id: str) -> None:
        self._k._cancel(order_id, "cancelled by strategy")

    def size_for_risk(self, entry_price: Decimal, stop_price: Decimal) -> Decimal:
        """Quantity risking the configured ``risk_per_trade`` of equity between entry and stop."""
        fraction = self._k.risk.limits.risk_per_trade
        if fraction is None:
            raise InvalidInputError("risk_per_trade is not configured", field="risk_per_trade")
        return size_for_risk(equity=self.equity(), risk_fraction=fraction, entry_price=entry_price,
                             stop_price=stop_price, instrument=self._m.instrument,
                             fee_rate=self._k.config.fees.taker)

    def round_price(self, price: float | Decimal) -> Decimal:
        value = price if isinstance(price, Decimal) else Decimal(repr(float(price)))
        return self._m.instrument.round_price(value)


__all__ = ["MarketContext"]
