"""Ports: the protocols the engine needs from the outside world.

- :class:`Broker` executes orders (simulated in ``engine.matching``, a venue in ``adapters``).
- :class:`Feed` delivers market data.
- :class:`LedgerStore` persists the ledger: the kernel hands it **one** :class:`LedgerBatch`
  per command (or per bar that changed anything), holding every order, fill, position,
  balance and closed trade the command touched, so a database adapter can write it in one
  transaction. A batch is complete: applying batches in order rebuilds the ledger.
- :class:`LedgerSource` gives back a :class:`LedgerSnapshot` (what a restarted kernel needs,
  see ``Kernel.restore``).
- :class:`EventBus` fans events out (WebSocket channels, Redis).
- :class:`LiveBroker` is a real venue's order API (``adapters.brokers``); the kernel reaches
  it through ``engine.live.LiveExecution``, which turns venue fills into the same fills,
  events and ledger updates the paper broker produces.

Required methods are listed on each protocol; adapters may add more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from quantdesk.core.events import Event
from quantdesk.core.market import Bar, BookTop, Tick
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType
from quantdesk.core.portfolio import Balance, Fill, Position, RoundTrip


@dataclass(slots=True)
class LedgerBatch:
    """Everything one command changed. Orders and positions are the live objects at commit time.

    ``positions`` holds changed positions, including ones just closed (no lots left; their
    ids are also in ``closed_position_ids``). ``balances`` is the account's full balance
    list after the command; ``equity`` the account equity at the command's marks.
    """

    sequence: int
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    closed_position_ids: list[str] = field(default_factory=list)
    trades: list[RoundTrip] = field(default_factory=list)
    balances: list[Balance] = field(default_factory=list)
    equity: Decimal | None = None
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.positions or self.trades or self.events)


@runtime_checkable
class LedgerStore(Protocol):
    """Persist ledger changes; ``commit`` is all-or-nothing for one batch."""

    def commit(self, batch: LedgerBatch) -> None: ...


@dataclass(slots=True)
class LedgerSnapshot:
    """The persisted state of one account, enough to rebuild a kernel after a restart.

    ``wallets`` maps asset → wallet amount (free + locked); ``positions`` are the open
    positions with their FIFO lots; ``open_orders`` are the working orders in creation order
    (protective orders carry ids ``sl_n``/``tp_n``/``liq_n`` and their exit reason in ``tag``);
    ``leverage`` maps symbol → leverage for new positions; ``id_counters`` maps id prefix →
    the highest number used, so no id is reused; ``sequence`` is the last committed batch's;
    ``trades`` the most recent closed trades, oldest first. All amounts exact Decimal.
    """

    currency: str
    sequence: int = 0
    wallets: dict[str, Decimal] = field(default_factory=dict)
    deposited: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    positions: list[Position] = field(default_factory=list)
    open_orders: list[Order] = field(default_factory=list)
    leverage: dict[str, int] = field(default_factory=dict)
    id_counters: dict[str, int] = field(default_factory=dict)
    trades: list[RoundTrip] = field(default_factory=list)


@runtime_checkable
class LedgerSource(Protocol):
    """Read back what a LedgerStore persisted."""

    def load(self) -> LedgerSnapshot: ...


@runtime_checkable
class EventBus(Protocol):
    """Publish engine events to subscribers; must not block the engine."""

    def publish(self, event: Event) -> None: ...


@runtime_checkable
class Feed(Protocol):
    """Market data for one instrument, in time order. Bars are delivered once closed."""

    def __iter__(self) -> Iterator[Bar | Tick | BookTop]: ...


@runtime_checkable
class Broker(Protocol):
    """Execute orders. Simulated brokers match against the market data the kernel passes in.

    Prices and quantities cross this port in the instrument's integer ticks and lots (see
    ``engine.matching``); a venue adapter converts at its boundary.

    Required:
      ``submit(working, last)``  accept a working order; return a match if it executes now
      ``cancel(order_id)``       remove a working order; return it, or None if unknown
      ``on_bar(o, h, l, volume)`` match working orders against a bar; (matches, expiries)
      ``on_price(last)``         match working orders against a last price; (matches, expiries)
    """

    def submit(self, working: object, last: int | None) -> object | None: ...

    def cancel(self, order_id: str) -> object | None: ...

    def on_bar(self, o: int, h: int, low: int, volume: float | None = None) -> tuple[list, list]: ...

    def on_price(self, last: int) -> tuple[list, list]: ...


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """A venue's view of one order, converted to exact Decimals at the adapter.

    ``status`` uses our lifecycle (``accepted`` while it rests unfilled). ``average_price`` is
    the mean price of ``filled_quantity`` (None before any fill); ``client_order_id`` is the
    id we sent (our order id), by which a lost reply can be looked up.
    """

    venue_order_id: str
    client_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None = None
    price: Decimal | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """An open position at the venue: ``quantity`` signed (negative = short), prices in quote units."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int | None = None
    unrealized_pnl: Decimal = Decimal(0)


@runtime_checkable
class LiveBroker(Protocol):
    """A real venue's order API, synchronous and in exact Decimals; symbols are ours (``BTCUSDT``).

    Errors are ours, translated at the adapter: InsufficientBalanceError (code
    ``INSUFFICIENT_BALANCE``) and OrderRejectedError when the venue refuses an order,
    NotFoundError for an unknown order, AuthenticationError for refused credentials,
    UpstreamUnavailableError (``EXCHANGE_ERROR``) once retries of transient failures ran out.

    Required:
      ``submit_order(order)``             place ``order`` (market or limit, with a quantity)
      ``cancel_order(symbol, venue_id)``  cancel a resting order; return its final state
      ``fetch_order(symbol, venue_id)``   the order's current state (fills so far)
      ``fetch_balances()``                balances of the account, one per asset
      ``fetch_positions(symbols)``        open positions (all symbols when None)
      ``set_leverage(symbol, leverage)``  leverage for new positions in ``symbol``
    """

    def submit_order(self, order: Order) -> VenueOrder: ...

    def cancel_order(self, symbol: str, venue_order_id: str) -> VenueOrder: ...

    def fetch_order(self, symbol: str, venue_order_id: str) -> VenueOrder: ...

    def fetch_balances(self) -> list[Balance]: ...

    def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]: ...

    def set_leverage(self, symbol: str, leverage: int) -> None: ...


class NullLedgerStore:
    """Keep nothing (backtests that only need the result)."""

    def commit(self, batch: LedgerBatch) -> None:
        return None


class MemoryLedgerStore:
    """Keep every batch in memory (tests, and the default before a database is configured)."""

    def __init__(self) -> None:
        self.batches: list[LedgerBatch] = []

    def commit(self, batch: LedgerBatch) -> None:
        self.batches.append(batch)

    def fills(self) -> Iterable[Fill]:
        for batch in self.batches:
            yield from batch.fills


class NullEventBus:
    def publish(self, event: Event) -> None:
        return None


class ListEventBus:
    """Collect events in a list (tests, backtests that report events)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)
