"""The kernel: one event loop, feed → strategy → risk → broker → ledger → store → bus.

Backtests, paper trading and live trading all run through :class:`Kernel`; only the clock,
the broker and the way bars arrive differ:

- a backtest calls :meth:`Kernel.run_bars` over integer-tick arrays (fast, no per-bar objects);
- paper and live call :meth:`Kernel.on_bar` / :meth:`Kernel.on_price` as data arrives and
  :meth:`Kernel.handle` for commands from the API.

Per bar ``i``: working orders are matched against the bar (fills at the open, stops and
limits inside the range); protective orders created by those fills get the same bar; the
market's last price becomes the close; then the strategy sees the closed bar and may
submit orders, which work from the next bar (or fill at once on a paper broker).

Everything a command (or a bar) changes is handed to the :class:`LedgerStore` as one
:class:`LedgerBatch`, then its events go to the :class:`EventBus`.

If the store refuses a batch: a command (:meth:`Kernel.handle`) is rolled back in memory —
the kernel is left exactly as before it and the store's error propagates. A batch from
market data (:meth:`Kernel.on_bar`, :meth:`Kernel.on_price`, ...) cannot be undone that
way (strategies have seen it), so the kernel fails stop: it refuses every further command
and bar with ``ENGINE_HALTED`` until :meth:`Kernel.restore` loads the store's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import numpy as np

from quantdesk.core.clock import Clock
from quantdesk.core.commands import (
    CancelOrder,
    CloseAllPositions,
    ClosePosition,
    Command,
    PanicExit,
    SetKillSwitch,
    SetLeverage,
    SubmitOrder,
)
from quantdesk.core.errors import ConflictError, InvalidInputError, NotFoundError, OrderRejectedError
from quantdesk.core.events import (
    Event,
    LeverageChanged,
    OrderAccepted,
    OrderCancelled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    PositionLiquidated,
    RiskHalted,
)
from quantdesk.core.instruments import Instrument, InstrumentKind
from quantdesk.core.market import Bar, BookTop
from quantdesk.core.money import MONEY_CONTEXT, ONE, ZERO, floor_div
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import ExitReason, Fill, Liquidity, Position, PositionSide
from quantdesk.engine import recovery, replay
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.context import MarketContext
from quantdesk.engine.ledger import IdSequence, Ledger
from quantdesk.engine.matching import (
    LIMIT,
    STOP_MARKET,
    Expiry,
    Match,
    SimulatedBroker,
    WorkingOrder,
    kind_of,
)
from quantdesk.engine.ports import (
    EventBus,
    LedgerBatch,
    LedgerSnapshot,
    LedgerStore,
    NullEventBus,
    NullLedgerStore,
)
from quantdesk.engine.risk import RiskManager
from quantdesk.engine.strategy import BarData, Strategy

_C = MONEY_CONTEXT
_DAY_NS = 86_400 * 1_000_000_000

ORDER_REJECTED = "ORDER_REJECTED"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee rates as fractions of notional per fill (0.001 = 0.1%), in the settlement currency."""

    maker: Decimal = ZERO
    taker: Decimal = ZERO

    @classmethod
    def flat(cls, rate: Decimal) -> FeeSchedule:
        return cls(rate, rate)


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Account-level settings: settlement currency, starting balance, fees, leverage, margin."""

    currency: str
    initial_balance: Decimal
    fees: FeeSchedule = FeeSchedule()
    default_leverage: int = 1
    maintenance_margin_rate: Decimal = ZERO
    liquidation: bool = True


@dataclass(slots=True)
class CommandResult:
    """What a command did: the order it created (if any) and the events, in order."""

    order: Order | None
    events: list[Event]
    orders: list[Order] = field(default_factory=list)


class _Market:
    """Per-instrument state: broker, last price, data buffer, strategies, protective orders."""

    __slots__ = ("instrument", "symbol", "broker", "last", "tick", "lot", "strategies", "ctx", "data", "leverage",
                 "protective", "time_ns", "_buffer", "book")

    def __init__(self, instrument: Instrument, broker: SimulatedBroker, leverage: int):
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.broker = broker
        self.last: int | None = None
        self.tick = instrument.tick_size
        self.lot = instrument.lot_size
        self.strategies: list[Strategy] = []
        self.ctx: MarketContext | None = None
        self.data: BarData | None = None
        self.leverage = leverage
        self.protective: dict[str, WorkingOrder] = {}
        self._buffer: list[list[float]] = [[], [], [], [], [], []]
        self.book: BookTop | None = None


class Kernel:
    """The trading engine for one account over one or more instruments.

    Not thread-safe: drive it from one task. All money is exact Decimal; prices are
    matched as integer ticks of each instrument.
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        clock: Clock | None = None,
        store: LedgerStore | None = None,
        bus: EventBus | None = None,
        risk: RiskManager | None = None,
        ids: IdSequence | None = None,
    ):
        self.config = config
        self.clock: Clock = clock or SimulatedClock()
        self.store: LedgerStore = store or NullLedgerStore()
        self.bus: EventBus = bus or NullEventBus()
        self.risk = risk or RiskManager()
        self.ids = ids or IdSequence()
        self.ledger = Ledger(config.currency, config.initial_balance, self.ids)
        self.markets: dict[str, _Market] = {}
        self.orders: dict[str, Order] = {}
        self._batch = LedgerBatch(0)
        self._sequence = 0
        self._fractions: dict[str, Decimal] = {}
        self._new_protective: list[WorkingOrder] = []
        # the store's error when a market-data batch could not be committed (fail-stop)
        self.failure: BaseException | None = None
        # nobody listens (a plain backtest): skip building balance snapshots per batch
        self._quiet = type(self.store) is NullLedgerStore and type(self.bus) is NullEventBus
        # quiet and inside run_bars: batches would be dropped unread, so events and batch
        # entries are not built at all (handle() always builds them: it returns the events)
        self._silent = False
        # SimulatedClock.now() for the clock's current ns (datetimes are immutable)
        self._now_ns = -1
        self._now_dt: datetime | None = None

    # ------------------------------------------------------------------ setup

    def add_market(self, instrument: Instrument, broker: SimulatedBroker | None = None,
                   leverage: int | None = None) -> None:
        """Trade ``instrument`` through ``broker`` (a backtest broker by default)."""
        lev = leverage or self.config.default_leverage
        self._check_leverage(instrument, lev)
        self.markets[instrument.symbol] = _Market(instrument, broker or SimulatedBroker(lot_size=instrument.lot_size),
                                                  lev)

    def add_strategy(self, symbol: str, strategy: Strategy) -> None:
        m = self._market(symbol)
        m.strategies.append(strategy)
        if m.ctx is None:
            m.ctx = MarketContext(self, m)

    def _market(self, symbol: str) -> _Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise NotFoundError("instrument", symbol, code="SYMBOL_NOT_FOUND") from None

    @staticmethod
    def _check_leverage(instrument: Instrument, leverage: int) -> None:
        if leverage < 1:
            raise InvalidInputError(f"leverage must be at least 1, got {leverage}", field="leverage")
        if leverage > max(instrument.max_leverage, 1):
            raise InvalidInputError(
                f"leverage {leverage} exceeds the {instrument.symbol} maximum of {instrument.max_leverage}",
                field="leverage", details={"max_leverage": instrument.max_leverage})

    def _now(self) -> datetime:
        clock = self.clock
        if type(clock) is SimulatedClock:
            ns = clock._ns
            if ns != self._now_ns:
                self._now_dt = clock.now()
                self._now_ns = ns
            return self._now_dt  # type: ignore[return-value]
        return clock.now()

    # ------------------------------------------------------------------ prices

    def _ticks(self, m: _Market, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> int:
        return int(_C.divide(price, m.tick).to_integral_value(rounding=rounding))

    def _price(self, m: _Market, ticks: int) -> Decimal:
        return _C.multiply(Decimal(ticks), m.tick)

    def mark(self, symbol: str) -> Decimal | None:
        """Last price of ``symbol`` as a Decimal, or None before any data."""
        m = self._market(symbol)
        return None if m.last is None else self._price(m, m.last)

    def marks(self) -> dict[str, Decimal]:
        out = {}
        for symbol, m in self.markets.items():
            if m.last is not None:
                out[symbol] = self._price(m, m.last)
        # a position without a price yet is marked at its entry
        for symbol, p in self.ledger.account.positions.items():
            out.setdefault(symbol, p.entry_price)
        return out

    def equity(self) -> Decimal:
        """Account equity at the last prices (wallet + unrealized P&L)."""
        return self.ledger.equity(self.marks())

    def available_margin(self) -> Decimal:
        return self.ledger.account.available_margin(self.marks())

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command) -> CommandResult:
        """Execute one command as one ledger batch; return the order it made and the events.

        Business refusals (risk, margin, reduce-only without a position) are not raised: the
        returned order is ``rejected`` with ``reason_code`` and an event says why. Malformed
        input raises InvalidInputError; an unknown order or position raises NotFoundError.
        If the store's commit raises, the kernel is rolled back to its state before the
        command and the store's error propagates; nothing is published.
        """
        self._check_running()
        cp = None if self._quiet else recovery.checkpoint(self)
        start = len(self._batch.events)
        order: Order | None = None
        orders: list[Order] = []
        silent, self._silent = self._silent, False  # a command returns its events
        try:
            if isinstance(command, SubmitOrder):
                order = self._submit(command)
            elif isinstance(command, CancelOrder):
                order = self._cancel(command.order_id, "cancelled by request")
            elif isinstance(command, ClosePosition):
                order = self._close_position(command.symbol, command.quantity, command.strategy, required=True)
            elif isinstance(command, CloseAllPositions):
                orders = self._close_all()
            elif isinstance(command, SetLeverage):
                m = self._market(command.symbol)
                self._check_leverage(m.instrument, command.leverage)
                set_venue_leverage = getattr(m.broker, "set_leverage", None)
                if set_venue_leverage is not None:  # a live venue keeps its own setting (engine.live)
                    set_venue_leverage(command.leverage)
                m.leverage = command.leverage
                self._emit(LeverageChanged(self._now(), command.symbol, command.leverage))
            elif isinstance(command, PanicExit):
                orders = self._panic(command.reason)
            elif isinstance(command, SetKillSwitch):
                if command.engaged:
                    orders = self._panic(command.reason)
                else:
                    self.risk.release_kill_switch()
            else:
                raise InvalidInputError(f"unknown command {type(command).__name__}", field="command")
        finally:
            self._silent = silent
            events = list(self._batch.events[start:])
            try:
                self.flush()
            except BaseException:
                if cp is not None:
                    recovery.rollback(self, cp)
                    self.failure = None
                raise
        return CommandResult(order, events, orders)

    def restore(self, snapshot: LedgerSnapshot) -> None:
        """Rebuild balances, positions, working orders, leverage and id counters from ``snapshot``.

        Call after :meth:`add_market` for every traded symbol (ConfigError otherwise), before
        any command; also the way out of a fail-stop. See :mod:`quantdesk.engine.recovery`.
        """
        recovery.restore(self, snapshot)

    def _check_running(self) -> None:
        if self.failure is not None:
            raise ConflictError(
                "the ledger store refused a commit; restore the kernel from the store before going on",
                code="ENGINE_HALTED", details={"cause": type(self.failure).__name__})

    def submit(self, command: SubmitOrder) -> Order:
        """Shortcut: handle ``command`` and return its order."""
        result = self.handle(command)
        if result.order is None:  # pragma: no cover - _submit always returns an order
            raise ConflictError("order was not created")
        return result.order

    def _emit(self, event: Event) -> None:
        if not self._silent:
            self._batch.events.append(event)

    def _touch(self, order: Order) -> None:
        if self._silent:
            return
        batch = self._batch
        if not batch.orders or batch.orders[-1] is not order:
            batch.orders.append(order)

    def flush(self) -> None:
        """Commit the pending batch to the store and publish its events."""
        batch = self._batch
        if not batch:
            return
        if self._quiet:
            self._batch = LedgerBatch(0)
            return
        self._sequence += 1
        batch.sequence = self._sequence
        batch.balances = self.ledger.account.balances()
        batch.equity = self.equity()
        seen: set[int] = set()
        batch.orders = [o for o in batch.orders if not (id(o) in seen or seen.add(id(o)))]  # type: ignore[func-returns-value]
        self._batch = LedgerBatch(0)
        try:
            self.store.commit(batch)
        except BaseException as exc:
            self.failure = exc  # handle() clears this after rolling back
            raise
        publish = self.bus.publish
        for event in batch.events:
            publish(event)

    def _new_order(self, m: _Market, cmd: SubmitOrder, prefix: str = "ord") -> Order:
        inst = m.instrument
        side = cmd.side
        quantity = None
        if cmd.quantity is not None:
            quantity = inst.round_quantity(cmd.quantity, ROUND_DOWN)
            if quantity <= 0:
                raise InvalidInputError(
                    f"quantity {cmd.quantity} is below the {inst.symbol} lot size {inst.lot_size}", field="quantity")
        # limits round to the passive side, stops and brackets to the nearest tick
        price = None
        if cmd.price is not None:
            price = inst.round_price(cmd.price, ROUND_FLOOR if side is OrderSide.BUY else ROUND_CEILING)
        stop = inst.round_price(cmd.stop_price) if cmd.stop_price is not None else None
        sl = inst.round_price(cmd.stop_loss) if cmd.stop_loss is not None else None
        tp = inst.round_price(cmd.take_profit) if cmd.take_profit is not None else None
        return Order(
            id=self.ids.next(prefix), symbol=m.symbol, side=side, type=cmd.type, quantity=quantity,
            created_at=self._now(), price=price, stop_price=stop, time_in_force=cmd.time_in_force,
            reduce_only=cmd.reduce_only, stop_loss=sl, take_profit=tp, strategy=cmd.strategy, tag=cmd.tag,
            client_order_id=cmd.client_order_id, equity_fraction=cmd.equity_fraction,
        )

    def _reject(self, order: Order, code: str, reason: str, *, denied: bool = False) -> Order:
        now = self._now()
        order.transition(OrderStatus.REJECTED, now, reason_code=code, reason=reason)
        if not self._silent:
            self._touch(order)
            cls = OrderDenied if denied else OrderRejected
            self._emit(cls(now, order.id, order.symbol, code, reason))
        return order

    def _submit(self, cmd: SubmitOrder) -> Order:
        m = self._market(cmd.symbol)
        order = self._new_order(m, cmd)
        self.orders[order.id] = order
        self._touch(order)
        position = self.ledger.position(order.symbol)
        closes = position is not None and PositionSide.of(order.side) is not position.side
        if order.reduce_only and not closes:
            what = "no position" if position is None else f"a {position.side.value} position"
            return self._reject(order, ORDER_REJECTED,
                                f"reduce_only {order.side.value} order for {order.symbol} but there is {what} to reduce")
        opens = not order.reduce_only and (order.quantity is None or not closes
                                           or order.quantity > position.quantity)  # type: ignore[union-attr]
        if opens:
            denied = self.risk.check_open(day=self._day(), open_positions=len(self.ledger.account.positions),
                                          adds_position=position is None or closes)
            if denied is not None:
                return self._reject(order, denied[0], denied[1], denied=True)
            if order.quantity is not None:
                ref = order.price or (None if m.last is None else self._price(m, m.last))
                if ref is not None:
                    problem = self._margin_problem(m, order, order.quantity, ref)
                    if problem is not None:
                        return self._reject(order, INSUFFICIENT_BALANCE, problem)
        now = self._now()
        order.transition(OrderStatus.ACCEPTED, now)
        if not self._silent:
            self._emit(OrderAccepted(now, order.id, order.symbol, order.side, order.type,
                                     order.quantity if order.quantity is not None else ZERO))
        if order.equity_fraction is not None:
            self._fractions[order.id] = order.equity_fraction
        w = self._working(m, order)
        try:
            match = m.broker.submit(w, m.last)
        except OrderRejectedError as exc:  # a live venue refused it (engine.live): an event, not an error
            self._fractions.pop(order.id, None)
            return self._reject(order, exc.code, exc.message)
        if w.triggered:
            order.triggered = True  # a stop-limit that triggered and rests must stay triggered after a restart
        if match is not None:
            self._book(m, match)
        elif m.broker.config.immediate_market_fills and order.time_in_force is not TimeInForce.GTC \
                and m.last is not None:
            # paper IOC/FOK that could not execute against the current price
            m.broker.cancel(order.id)
            self._expire(order, f"{order.time_in_force.value} order could not fill at once")
        return order

    def _working(self, m: _Market, order: Order, *, reason: ExitReason | None = None,
                 protective: bool = False, closes_position: bool = False) -> WorkingOrder:
        lots = 0 if order.quantity is None else int(_C.divide(order.remaining_quantity, m.lot))
        limit = self._ticks(m, order.price) if order.price is not None else 0
        stop = self._ticks(m, order.stop_price) if order.stop_price is not None else 0
        return WorkingOrder(order, sign=order.side.sign, kind=kind_of(order.type), limit=limit, stop=stop,
                            lots=lots, reason=reason, protective=protective,
                            sized_later=closes_position or order.quantity is None)

    def _margin_problem(self, m: _Market, order: Order, open_qty: Decimal, price: Decimal) -> str | None:
        notional = _C.multiply(open_qty, price)
        fee = _C.multiply(notional, self.config.fees.taker)
        required = _C.add(_C.divide(notional, Decimal(m.leverage)), fee)
        available = self.available_margin()
        if required > available:
            return (f"order {order.id} needs margin {required.normalize():f} {self.config.currency} "
                    f"but {available.normalize():f} is available")
        return None

    def _expire(self, order: Order, reason: str) -> None:
        order.transition(OrderStatus.EXPIRED, self._now())
        self._touch(order)
        self._emit(OrderExpired(self._now(), order.id, order.symbol, reason))
        self._fractions.pop(order.id, None)

    def _cancel(self, order_id: str, reason: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise NotFoundError("order", order_id, code="ORDER_NOT_FOUND")
        order.transition(OrderStatus.CANCELLED, self._now())  # raises on a terminal order
        m = self.markets[order.symbol]
        m.broker.cancel(order_id)
        for key, w in list(m.protective.items()):
            if w.order is order:
                del m.protective[key]
        self._touch(order)
        self._emit(OrderCancelled(self._now(), order.id, order.symbol, reason))
        self._fractions.pop(order_id, None)
        return order

    def _close_position(self, symbol: str, quantity: Decimal | None, strategy: str | None,
                        *, required: bool) -> Order | None:
        m = self._market(symbol)
        position = self.ledger.position(symbol)
        if position is None:
            if required:
                raise NotFoundError("position", symbol, code="POSITION_NOT_FOUND")
            return None
        qty = position.quantity if quantity is None else min(quantity, position.quantity)
        side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
        cmd = SubmitOrder(symbol=m.symbol, side=side, type=OrderType.MARKET, quantity=qty,
                          reduce_only=True, strategy=strategy or position.strategy)
        return self._submit(cmd)

    def _close_all(self) -> list[Order]:
        out = []
        for symbol in list(self.ledger.account.positions):
            order = self._close_position(symbol, None, None, required=False)
            if order is not None:
                out.append(order)
        return out

    def _panic(self, reason: str) -> list[Order]:
        self.risk.engage_kill_switch(reason)
        self._emit(RiskHalted(self._now(), "KILL_SWITCH", reason))
        for order in list(self.orders.values()):
            if order.status.is_open and not order.reduce_only:
                self._cancel(order.id, reason)
        return self._close_all()

    def _day(self) -> int:
        clock = self.clock
        if isinstance(clock, SimulatedClock):
            return clock.ns // _DAY_NS
        now = clock.now()
        return now.toordinal()

    # ------------------------------------------------------------------ fills

    def _size_fraction(self, m: _Market, fraction: Decimal, price: Decimal, close_qty: Decimal) -> Decimal:
        """Quantity affordable with ``fraction`` of the available margin at ``price``, fees included.

        ``floor(available × f / (price × (1/leverage + taker fee)))`` lots — at leverage 1
        exactly kernc/backtesting.py's ``int(margin_available × f // (price × (1 + commission)))``.
        When the order first closes an opposite position (``close_qty``), the margin that
        close frees and the P&L it realizes at ``price`` count as available.
        """
        rate = self.config.fees.taker
        acct = self.ledger.account
        marks = self.marks()
        marks[m.symbol] = price
        equity = acct.equity(marks)
        used = acct.used_margin
        if close_qty:
            position = acct.positions[m.symbol]
            equity = _C.subtract(equity, _C.multiply(_C.multiply(close_qty, price), rate))
            used = _C.subtract(used, position.margin)
        available = max(_C.subtract(_C.subtract(equity, used), acct.reserved_margin), ZERO)
        lev = Decimal(m.leverage)
        # lots ≤ available·f / (price·(1/lev + rate))  ⇔  lots ≤ available·f·lev / (price·(1 + lev·rate)); exact
        lots = floor_div(_C.multiply(_C.multiply(available, fraction), lev),
                         _C.multiply(_C.multiply(price, _C.add(ONE, _C.multiply(lev, rate))), m.lot))
        return _C.multiply(Decimal(max(lots, 0)), m.lot)

    def _book(self, m: _Market, match: Match) -> None:
        """Turn a match into fills: size it, check margin, book it, manage brackets."""
        w = match.working
        order = w.order
        price = self._price(m, match.price)
        position = self.ledger.position(order.symbol)
        closes = position is not None and PositionSide.of(order.side) is not position.side
        if w.protective or order.reduce_only:
            if not closes:
                if order.status.is_open:
                    self._cancel(order.id, "position already closed")
                return
            if order.quantity is None or w.sized_later:
                qty = position.quantity  # type: ignore[union-attr]
                if order.quantity is None:
                    order.size(qty)
                else:
                    qty = min(qty, order.remaining_quantity)
            else:
                qty = min(_C.multiply(Decimal(match.lots), m.lot), position.quantity)  # type: ignore[union-attr]
            self._fill(m, order, qty, price, match, w.reason)
            return
        fraction = self._fractions.pop(order.id, None)
        if fraction is not None:
            # a sized order first flattens an opposite position, then opens on what is left
            close_qty = position.quantity if closes else ZERO  # type: ignore[union-attr]
            new_qty = self._size_fraction(m, fraction, price, close_qty)
            total = _C.add(close_qty, new_qty)
            if total <= 0:
                self._reject(order, INSUFFICIENT_BALANCE,
                             f"not enough margin for one lot of {order.symbol} at {price}")
                return
            order.size(total)
            self._fill(m, order, total, price, match, None)
            return
        qty = _C.multiply(Decimal(match.lots), m.lot)
        close_qty = min(qty, position.quantity) if closes else ZERO  # type: ignore[union-attr]
        open_qty = _C.subtract(qty, close_qty)
        if open_qty > 0:
            denied = None
            if not closes and position is None:
                denied = self.risk.check_open(day=self._day(), open_positions=len(self.ledger.account.positions),
                                              adds_position=True)
            problem = denied[1] if denied else self._margin_problem_after_close(m, order, close_qty, open_qty, price)
            if problem is not None:
                if order.status is OrderStatus.PARTIALLY_FILLED:
                    self._cancel(order.id, problem)
                else:
                    self._reject(order, denied[0] if denied else INSUFFICIENT_BALANCE, problem)
                return
        self._fill(m, order, qty, price, match, None)

    def _margin_problem_after_close(self, m: _Market, order: Order, close_qty: Decimal, open_qty: Decimal,
                                    price: Decimal) -> str | None:
        if not close_qty:
            return self._margin_problem(m, order, open_qty, price)
        # the closing part frees the position's margin and realizes its P&L first
        position = self.ledger.position(order.symbol)
        assert position is not None
        freed = _C.add(position.margin, position.unrealized_pnl(price)) if close_qty == position.quantity else ZERO
        notional = _C.multiply(open_qty, price)
        required = _C.add(_C.divide(notional, Decimal(m.leverage)), _C.multiply(notional, self.config.fees.taker))
        available = _C.add(self.available_margin(), freed)
        if required > available:
            return f"order {order.id} needs margin {required.normalize():f} but {available.normalize():f} is available"
        return None

    def _fill(self, m: _Market, order: Order, qty: Decimal, price: Decimal, match: Match,
              reason: ExitReason | None) -> None:
        now = self._now()
        fees = self.config.fees
        rate = fees.maker if match.liquidity.value == "maker" else fees.taker
        fee = _C.multiply(_C.multiply(qty, price), rate)
        fill = Fill(self.ids.next("fill"), order.id, order.symbol, order.side, qty, price, fee,
                    self.config.currency, now, match.liquidity, reason)
        order.record_fill(qty, price, fee, now)
        position_before = self.ledger.position(order.symbol)
        silent = self._silent
        events, touched, trips = self.ledger.apply_fill(fill, leverage=m.leverage, strategy=order.strategy,
                                                        stop_loss=order.stop_loss, emit=not silent)
        if not silent:
            self._touch(order)
            self._emit(OrderFilled(now, fill, order.status, order.filled_quantity))
            batch = self._batch
            batch.fills.append(fill)
            for event in events:
                batch.events.append(event)
            for p in touched:
                if p not in batch.positions:
                    batch.positions.append(p)
                if not p.is_open:
                    batch.closed_position_ids.append(p.id)
            batch.trades.extend(trips)
        if reason is ExitReason.LIQUIDATION and position_before is not None:
            self._emit(PositionLiquidated(now, position_before.id, order.symbol, price))
        if trips:
            day = self._day()
            for trip in trips:
                halted = self.risk.on_trade(trip, day)
                if halted is not None:
                    self._emit(RiskHalted(now, halted[0], halted[1]))
        self._after_position_change(m, order)
        if m.ctx is not None:
            for strategy in m.strategies:
                strategy.on_fill(m.ctx, fill)

    def _after_position_change(self, m: _Market, order: Order) -> None:
        """Keep a position's stop loss, take profit and liquidation orders in step with it."""
        position = self.ledger.position(order.symbol)
        if position is None:
            for key in list(m.protective):
                w = m.protective.pop(key)
                if w.order.status.is_open:
                    self._cancel(w.order.id, "position closed")
            return
        if not order.reduce_only and PositionSide.of(order.side) is position.side:
            if order.stop_loss is not None:
                position.stop_loss = order.stop_loss
                self._protect(m, position, "sl", OrderType.STOP_MARKET, order.stop_loss, ExitReason.STOP_LOSS)
            if order.take_profit is not None:
                position.take_profit = order.take_profit
                self._protect(m, position, "tp", OrderType.LIMIT, order.take_profit, ExitReason.TAKE_PROFIT)
        mmr = self.config.maintenance_margin_rate
        if position.side is PositionSide.LONG and position.leverage == 1 and mmr < ONE:
            return  # E·(1 − 1/1)/(1 − mmr) = 0: a long at leverage 1 cannot be liquidated
        if self.config.liquidation and (m.leverage > 1 or m.instrument.kind is InstrumentKind.PERPETUAL
                                        or position.side is PositionSide.SHORT):
            liq = position.liquidation_price(mmr)
            if liq is not None:
                rounding = ROUND_CEILING if position.side is PositionSide.LONG else ROUND_FLOOR
                liq_price = _C.multiply(Decimal(self._ticks(m, liq, rounding)), m.tick)
                if liq_price > 0:
                    self._protect(m, position, "liq", OrderType.STOP_MARKET, liq_price, ExitReason.LIQUIDATION)

    def _protect(self, m: _Market, position: Position, key: str, kind: OrderType, price: Decimal,
                 reason: ExitReason) -> None:
        old = m.protective.pop(key, None)
        if old is not None and old.order.status.is_open:
            self._cancel(old.order.id, "replaced")
        side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
        prefix = {"sl": "sl", "tp": "tp", "liq": "liq"}[key]
        order = Order(
            id=self.ids.next(prefix), symbol=position.symbol, side=side, type=kind, quantity=None,
            equity_fraction=ONE, created_at=self._now(),
            price=price if kind is OrderType.LIMIT else None,
            stop_price=price if kind is OrderType.STOP_MARKET else None,
            reduce_only=True, strategy=position.strategy, tag=reason.value,
        )
        self.orders[order.id] = order
        order.transition(OrderStatus.ACCEPTED, self._now())
        self._touch(order)
        self._emit(OrderAccepted(self._now(), order.id, order.symbol, order.side, order.type, ZERO))
        w = self._working(m, order, reason=reason, protective=kind is OrderType.STOP_MARKET, closes_position=True)
        m.protective[key] = w
        m.broker.engine.add(w)
        self._new_protective.append(w)

    # ------------------------------------------------------------------ market data

    def _process(self, m: _Market, matches: list[Match], expiries: list[Expiry], o: int, h: int, low: int) -> None:
        self._new_protective = []
        for match in matches:
            if match.working.order.status.is_open:
                self._book(m, match)
        for e in expiries:
            if e.working.order.status.is_open:
                self._expire(e.working.order, e.reason)
        # brackets opened by a fill at this bar's open get the rest of the same bar
        rounds = 0
        while self._new_protective and rounds < 3:
            rounds += 1
            fresh, self._new_protective = self._new_protective, []
            extra = [w for w in fresh if w.order.status.is_open and w in m.broker.working]
            if not extra:
                break
            engine = m.broker.engine
            saved = engine.working
            engine.working = extra
            try:
                more, _ = engine.on_bar(o, h, low, None)
            finally:
                remaining = [w for w in saved if w in engine.working or w not in extra]
                engine.working = remaining
            for match in more:
                if match.working.order.status.is_open:
                    self._book(m, match)

    def run_bars(self, symbol: str, data: BarData, ticks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                 close_ns: np.ndarray, progress: Callable[[int, int], None] | None = None) -> None:
        """Run the event loop over pre-converted bars (a backtest); see :func:`replay.run_bars`.

        ``ticks`` are int64 open/high/low/close arrays in ticks; ``close_ns`` the UTC close
        time of each bar in ns. Strategies see bar ``i`` after it closed; their market
        orders fill at bar ``i + 1``'s open.
        """
        replay.run_bars(self, symbol, data, ticks, close_ns, progress)

    def on_bar(self, symbol: str, bar: Bar, close_at: datetime | None = None) -> None:
        """Process one closed bar from a live or paper feed (same rules as :meth:`run_bars`)."""
        self._check_running()
        m = self._market(symbol)
        clock = self.clock
        o, h, low, c = (self._ticks(m, x) for x in (bar.open, bar.high, bar.low, bar.close))
        if isinstance(clock, SimulatedClock):
            clock.set(bar.open_at)
        self.ledger.index += 1
        if m.broker.working:
            matches, expiries = m.broker.on_bar(o, h, low, float(bar.volume))
            self._process(m, matches, expiries, o, h, low)
            self._sync_triggers(m)
        m.last = c
        if isinstance(clock, SimulatedClock) and close_at is not None:
            clock.set(close_at)
        buf = m._buffer
        ns = int(bar.open_at.timestamp()) * 1_000_000_000
        for k, v in enumerate((float(bar.open), float(bar.high), float(bar.low), float(bar.close),
                               float(bar.volume), ns)):
            buf[k].append(v)
        m.data = BarData(*(np.asarray(b, dtype=np.float64) for b in buf[:5]),
                         np.asarray(buf[5], dtype=np.int64))
        if m.ctx is not None:
            m.ctx.i = len(m.data) - 1
            for s in m.strategies:
                s.prepare(m.data)
                s.on_bar(m.ctx)
        self.flush()

    def on_price(self, symbol: str, price: Decimal) -> None:
        """Process a new last price (tick or quote): update the mark and match resting orders."""
        self._check_running()
        m = self._market(symbol)
        m.last = self._ticks(m, price)
        if m.broker.working:
            matches, expiries = m.broker.on_price(m.last)
            self._process(m, matches, expiries, m.last, m.last, m.last)
            self._sync_triggers(m)
        self.flush()

    def on_book(self, symbol: str, book: BookTop) -> None:
        """Pass a top-of-book snapshot to the market's strategies (mid price becomes the mark)."""
        self._check_running()
        m = self._market(symbol)
        m.book = book
        if book.best_bid is not None and book.best_ask is not None:
            mid = _C.divide(_C.add(book.best_bid, book.best_ask), Decimal(2))
            m.last = self._ticks(m, mid)
            if m.broker.working:
                matches, expiries = m.broker.on_price(m.last)
                self._process(m, matches, expiries, m.last, m.last, m.last)
                self._sync_triggers(m)
        if m.ctx is not None:
            for s in m.strategies:
                s.on_book(m.ctx, book)
        self.flush()

    def close_at_last(self, symbol: str, reason: ExitReason = ExitReason.MANUAL) -> Order | None:
        """Close the position in ``symbol`` now at the last price (end of a backtest); one batch."""
        self._check_running()
        m = self._market(symbol)
        order = self._close_position(symbol, None, None, required=False)
        if order is not None and m.last is not None:
            w = m.broker.cancel(order.id)
            if w is not None:
                w.reason = reason
                self._book(m, Match(w, m.last, w.lots, Liquidity.TAKER))
        self.flush()
        return order

    def _sync_triggers(self, m: _Market) -> None:
        # stop-limits triggered by this price but still resting: persist the flag with the order
        for w in m.broker.engine.working:
            if w.triggered and not w.order.triggered:
                w.order.triggered = True
                self._touch(w.order)

    # ------------------------------------------------------------------ views

    def position(self, symbol: str) -> Position | None:
        return self.ledger.position(symbol)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_open and (symbol is None or o.symbol == symbol)]


__all__ = ["CommandResult", "FeeSchedule", "Kernel", "KernelConfig", "LIMIT", "STOP_MARKET"]
