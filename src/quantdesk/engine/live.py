"""Live execution: the kernel's broker for a real venue, over a :class:`~quantdesk.engine.ports.LiveBroker`.

The kernel stays the one loop (STYLE §10): it checks risk and margin, keeps the order
lifecycle, books fills in the ledger and emits ``OrderFilled``. :class:`LiveExecution` plugs
in where the paper broker does and only changes *where* an order executes:

- ``submit``: the order goes to the venue; what the venue filled at once comes back as a
  match at the venue's average price (so the kernel books the same Fill, position and
  balance change the paper broker would at that price); the rest waits at the venue.
- ``on_price`` / ``on_bar``: orders waiting at the venue are polled (``fetch_order``); new
  fills become matches, a venue-side cancel or expiry becomes an expiry. Protective orders
  (stop loss, take profit) are watched locally as on paper; when one triggers, a reduce-only
  market order for the venue's position goes out and its fill is booked.
- ``cancel``: cancels at the venue first, so a refused cancel (already filled) raises
  before the kernel records anything it cannot keep.

Limits: orders need an explicit quantity (sizing on a fraction of margin happens at fill
time on paper, which a venue cannot do); fees are the kernel's ``FeeSchedule``, not the
venue's reported commission; a fill's average price is rounded to the instrument's tick
(half-even) because the kernel matches in ticks. A venue refusal raises
``OrderRejectedError``, which the kernel turns into a rejected order with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from quantdesk.core.errors import OrderRejectedError, QuantdeskError
from quantdesk.core.instruments import Instrument
from quantdesk.core.money import MONEY_CONTEXT
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType
from quantdesk.core.portfolio import Liquidity
from quantdesk.engine.matching import (
    MARKET,
    Expiry,
    Match,
    NoSlippage,
    SimulatedBroker,
    SimulatedBrokerConfig,
    WorkingOrder,
)
from quantdesk.engine.ports import LiveBroker, VenueOrder

_C = MONEY_CONTEXT
_TERMINAL_UNFILLED = (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


@dataclass(slots=True)
class _AtVenue:
    working: WorkingOrder
    venue_order_id: str
    filled_lots: int


class LiveExecution(SimulatedBroker):
    """Broker port for one instrument on a live venue (see the module docstring).

    ``venue`` is the adapter (e.g. ``CcxtBroker``); ``instrument`` gives the symbol, tick and
    lot the kernel matches in. Protective orders use the inherited local matching engine.
    """

    def __init__(self, venue: LiveBroker, instrument: Instrument):
        super().__init__(SimulatedBrokerConfig(NoSlippage(), None, immediate_market_fills=True),
                         instrument.lot_size)
        self.venue = venue
        self.instrument = instrument
        self.at_venue: dict[str, _AtVenue] = {}  # our order id → its venue order

    @property
    def working(self) -> list[WorkingOrder]:
        return self.engine.working + [a.working for a in self.at_venue.values()]

    # ------------------------------------------------------------------ Broker port

    def submit(self, working: WorkingOrder, last: int | None) -> Match | None:
        """Place the order at the venue; return a match for what filled at once."""
        order = working.order
        if order.quantity is None:
            raise OrderRejectedError(
                f"order {order.id}: a live order needs a quantity (equity_fraction sizing is paper-only)",
                details={"order_id": order.id})
        placed = self.venue.submit_order(order)
        return self._track(working, placed)

    def cancel(self, order_id: str) -> WorkingOrder | None:
        entry = self.at_venue.get(order_id)
        if entry is None:
            return super().cancel(order_id)
        self.venue.cancel_order(self.instrument.symbol, entry.venue_order_id)
        del self.at_venue[order_id]
        return entry.working

    def on_bar(self, o: int, h: int, low: int, volume: float | None = None) -> tuple[list[Match], list[Expiry]]:
        local, expiries = self.engine.on_bar(o, h, low, volume)
        return self._sync(local, expiries)

    def on_price(self, last: int) -> tuple[list[Match], list[Expiry]]:
        local, expiries = self.engine.on_price(last)
        return self._sync(local, expiries)

    def set_leverage(self, leverage: int) -> None:
        """Set the venue's leverage for this instrument (the kernel calls it on SetLeverage)."""
        self.venue.set_leverage(self.instrument.symbol, leverage)

    # ------------------------------------------------------------------ internals

    def _sync(self, local: list[Match], expiries: list[Expiry]) -> tuple[list[Match], list[Expiry]]:
        matches = [m for m in (self._exit_at_venue(match) for match in local) if m is not None]
        for order_id, entry in list(self.at_venue.items()):
            current = self.venue.fetch_order(self.instrument.symbol, entry.venue_order_id)
            # fills after the order rested: a limit made liquidity, a market order took it
            liquidity = Liquidity.TAKER if entry.working.kind == MARKET else Liquidity.MAKER
            match = self._fill_delta(entry, current, liquidity)
            if match is not None:
                matches.append(match)
            if current.status is OrderStatus.FILLED or current.status in _TERMINAL_UNFILLED:
                del self.at_venue[order_id]
                if current.status in _TERMINAL_UNFILLED:
                    expiries.append(Expiry(entry.working, f"{current.status.value} at the venue"))
        return matches, expiries

    def _exit_at_venue(self, match: Match) -> Match | None:
        """A protective order triggered locally: close the venue's position with a market order."""
        w = match.working
        symbol = self.instrument.symbol
        position = next((p for p in self.venue.fetch_positions([symbol]) if p.symbol == symbol), None)
        if position is None or not position.quantity:
            return None
        exit_order = Order(id=w.order.id, symbol=symbol,
                           side=OrderSide.SELL if position.quantity > 0 else OrderSide.BUY,
                           type=OrderType.MARKET, quantity=abs(position.quantity), created_at=w.order.created_at,
                           reduce_only=True, strategy=w.order.strategy, tag=w.order.tag)
        try:
            placed = self.venue.submit_order(exit_order)
        except QuantdeskError:
            self.engine.add(w)  # keep watching: the next price retries the exit
            raise
        lots = self._lots(placed.filled_quantity)
        if not lots or placed.average_price is None:
            return None
        return Match(w, self._ticks(placed.average_price), lots, Liquidity.TAKER)

    def _track(self, working: WorkingOrder, placed: VenueOrder) -> Match | None:
        if placed.status in _TERMINAL_UNFILLED and not placed.filled_quantity:
            raise OrderRejectedError(f"the venue {placed.status.value} order {working.order.id}",
                                     details={"venue_order_id": placed.venue_order_id})
        entry = _AtVenue(working, placed.venue_order_id, 0)
        match = self._fill_delta(entry, placed, Liquidity.TAKER)  # filled on arrival: it took liquidity
        if placed.status.is_open:
            self.at_venue[working.order.id] = entry
        return match

    def _fill_delta(self, entry: _AtVenue, current: VenueOrder, liquidity: Liquidity) -> Match | None:
        lots = self._lots(current.filled_quantity)
        new = lots - entry.filled_lots
        if new <= 0 or current.average_price is None:
            return None
        entry.filled_lots = lots
        return Match(entry.working, self._ticks(current.average_price), new, liquidity)

    def _lots(self, quantity: Decimal) -> int:
        return int(_C.divide(quantity, self.instrument.lot_size).to_integral_value(rounding=ROUND_DOWN))

    def _ticks(self, price: Decimal) -> int:
        return int(_C.divide(price, self.instrument.tick_size).to_integral_value(rounding=ROUND_HALF_EVEN))


__all__ = ["LiveExecution"]
