"""Trading use cases shared by every surface that trades: paper accounts over the kernel.

One paper account per user (created on first use), one :class:`~quantdesk.engine.kernel.Kernel`
per account trading perpetual futures through a :class:`~quantdesk.engine.matching.PaperBroker`
per instrument: market orders fill at once against the current price, margin is isolated
(notional / leverage), fees are taker/maker fractions of notional.

Current prices come from the market-data layer: the live feed's last tick when it runs
(:meth:`TradingService.run_market_data` listens to ``market:*``), else the close of the last
closed 1m bar, cached for ``price_ttl_s``. Ticks also match each account's resting orders
(limits, stops, stop losses, take profits, liquidations) and closed 1m bars drive the bot.

Commands of one account are serialised by an asyncio lock (the kernel is not thread-safe).
Each command is one ledger batch committed to the account's :class:`LedgerStore`; after the
commit its events go to the bus as ``/ws`` channel messages on the user's topics
(``u7:orders``, ``u7:positions``, ``u7:account``, ``u7:signals``).

Persistence arrives through ports: ``ledger_stores`` builds each account's LedgerStore
(in memory by default; a database adapter in app.py), ``accounts`` keeps paper accounts,
``trade_query`` answers trade history (the kernel's own ledger by default), ``bot_states`` keeps
each user's bot and strategy settings (:mod:`quantdesk.services.trading_state`): every bot start,
stop, strategy change and counted signal is saved before it is acknowledged, and a bot that was
running when the server stopped is resumed when :meth:`TradingService.run_market_data` starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Protocol

from quantdesk.core.clock import Clock
from quantdesk.core.commands import CancelOrder, CloseAllPositions, ClosePosition, SetLeverage, SubmitOrder
from quantdesk.core.errors import (
    InsufficientBalanceError,
    InvalidInputError,
    NotFoundError,
    OrderRejectedError,
)
from quantdesk.core.events import (
    BalanceChanged,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    PositionClosed,
    PositionLiquidated,
    PositionOpened,
    TradeClosed,
)
from quantdesk.core.instruments import Instrument, InstrumentKind
from quantdesk.core.market import Bar, BookTop
from quantdesk.core.money import MONEY_CONTEXT, ZERO
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import ExitReason, Position, PositionSide, RoundTrip
from quantdesk.engine.clocks import WallClock
from quantdesk.engine.kernel import INSUFFICIENT_BALANCE, FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.ledger import IdSequence
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.ports import LedgerSnapshot, LedgerSource, LedgerStore, ListEventBus, MemoryLedgerStore
from quantdesk.engine.strategy import Strategy, create_strategy
from quantdesk.services import push
from quantdesk.services.accounts import Principal
from quantdesk.services.backtest_jobs import JOB_TYPE, bars_to_columns
from quantdesk.services.jobs import JobService
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.pnl import (
    Period,
    group_pnl,
    period_start,
    strategy_of,
    trade_stats,
)
from quantdesk.services.topics import user_topic
from quantdesk.services.trading_bot import BotSlot, BotState
from quantdesk.services.trading_prices import PriceBoard
from quantdesk.services.trading_state import ActiveStrategy, BotSnapshot, BotStateStore, MemoryBotStateStore
from quantdesk.services.trading_strategies import StrategyBook, StrategyView, restore_parameters
from quantdesk.services.trading_views import (
    BacktestView,
    BalanceView,
    BotStatusView,
    BotStopped,
    CloseResult,
    LeverageView,
    PnlReport,
    PositionsView,
    PositionView,
    TradePage,
)

log = logging.getLogger(__name__)
_C = MONEY_CONTEXT
MAX_PAGE = 1000


# ---------------------------------------------------------------------------- config and ports


@dataclass(frozen=True)
class TradingConfig:
    """Paper-trading defaults: settlement currency, starting balance, fees, leverage, prices, bot."""

    currency: str = "USDT"
    initial_balance: Decimal = Decimal(10_000)
    taker_fee: Decimal = Decimal("0.0004")
    maker_fee: Decimal = Decimal("0.0002")
    default_leverage: int = 10
    maintenance_margin_rate: Decimal = Decimal("0.004")
    price_ttl_s: float = 2.0
    live_price_max_age_s: float = 90.0
    exchange: str = "paper"
    bot_symbols: tuple[str, ...] = ("BTCUSDT",)
    default_strategies: tuple[str, ...] = ("momentum",)
    backtest_timeframe: str = "1h"
    live_trading: bool = False
    offload_commands: bool = False  # run kernel commands in a thread (a LedgerStore that does I/O)


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """A user's paper futures account: ``number`` is unique and appears in its order ids."""

    id: str
    user_id: int
    number: int
    currency: str
    initial_balance: Decimal
    created_at: datetime
    exchange: str = "paper"
    account_type: str = "futures"
    status: str = "active"


class PaperAccountStore(Protocol):
    """Keeps paper accounts (one per user)."""

    def get_or_create(self, user_id: int, *, currency: str, initial_balance: Decimal, now: datetime,
                      exchange: str) -> PaperAccount: ...


class LedgerStoreFactory(Protocol):
    """Builds the LedgerStore of one account (``MemoryLedgerStore`` or a database adapter)."""

    def __call__(self, account: PaperAccount) -> LedgerStore: ...


class TradeQuery(Protocol):
    """Closed trades of an account, oldest first (a database query once trades are persisted)."""

    def closed_trades(self, account: PaperAccount) -> Sequence[RoundTrip]: ...


class ExchangeKeys(Protocol):
    """Whether a user has stored exchange credentials (the key vault)."""

    def has_keys(self, user_id: int) -> bool: ...


class Bus(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, *patterns: str, maxsize: int = 1000, lossless: bool = False) -> Any: ...


class MemoryPaperAccounts:
    """Paper accounts in memory, numbered by user id."""

    def __init__(self) -> None:
        self._accounts: dict[int, PaperAccount] = {}

    def get_or_create(self, user_id: int, *, currency: str, initial_balance: Decimal, now: datetime,
                      exchange: str) -> PaperAccount:
        account = self._accounts.get(user_id)
        if account is None:
            account = PaperAccount(f"acc_{user_id}", user_id, user_id, currency, initial_balance, now, exchange)
            self._accounts[user_id] = account
        return account


def memory_ledger_stores(account: PaperAccount) -> LedgerStore:
    """The default LedgerStoreFactory: every batch kept in memory."""
    return MemoryLedgerStore()


class NoExchangeKeys:
    def has_keys(self, user_id: int) -> bool:
        return False


class AccountIds(IdSequence):
    """Ids unique across accounts: ``ord_<account number>_<n>``, ``pos_...``, ``trade_...``."""

    def __init__(self, number: int):
        super().__init__()
        self.number = number

    def next(self, prefix: str) -> str:
        # counted under "ord_<number>", the prefix a stored id parses back to, so restores continue it
        return super().next(f"{prefix}_{self.number}")


# ---------------------------------------------------------------------------- the service


@dataclass
class _Session:
    """The live state of one account: its kernel, lock, bot and strategy settings."""

    account: PaperAccount
    kernel: Kernel
    events: ListEventBus
    strategies: StrategyBook
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: dict[str, BotSlot] = field(default_factory=dict)
    bot: BotState = field(default_factory=BotState)
    # symbol → {host name → strategy}: strategies another service runs in the slot beside the bot's
    hosted: dict[str, dict[str, Strategy]] = field(default_factory=dict)


class TradingService:
    """Paper trading for every user: orders, positions, history, P&L, the bot and its strategies."""

    def __init__(
        self,
        market: MarketDataService,
        bus: Bus,
        *,
        config: TradingConfig | None = None,
        ledger_stores: LedgerStoreFactory = memory_ledger_stores,
        accounts: PaperAccountStore | None = None,
        trade_query: TradeQuery | None = None,
        exchange_keys: ExchangeKeys | None = None,
        jobs: JobService | None = None,
        clock: Clock | None = None,
        bot_states: BotStateStore | None = None,
    ):
        self.config = config or TradingConfig()
        self.market = market
        self._bus = bus
        self._ledger_stores = ledger_stores
        self._accounts = accounts or MemoryPaperAccounts()
        self._trade_query = trade_query
        self._keys = exchange_keys or NoExchangeKeys()
        self._bot_states: BotStateStore = bot_states or MemoryBotStateStore()
        self.clock: Clock = clock or WallClock()
        self.prices = PriceBoard(market, ttl_s=self.config.price_ttl_s, live_max_age_s=self.config.live_price_max_age_s)
        self._sessions: dict[int, _Session] = {}
        self._instruments: dict[str, Instrument] = {}
        self._jobs = jobs
        if jobs is not None:
            jobs.register(JOB_TYPE)

    # -- accounts and instruments ---------------------------------------------------------

    def _session(self, user_id: int) -> _Session:
        session = self._sessions.get(user_id)
        if session is None:
            cfg = self.config
            account = self._accounts.get_or_create(user_id, currency=cfg.currency, initial_balance=cfg.initial_balance,
                                                   now=self.clock.now(), exchange=cfg.exchange)
            events = ListEventBus()
            store = self._ledger_stores(account)
            kernel = Kernel(
                KernelConfig(cfg.currency, account.initial_balance, FeeSchedule(cfg.maker_fee, cfg.taker_fee),
                             default_leverage=cfg.default_leverage,
                             maintenance_margin_rate=cfg.maintenance_margin_rate),
                clock=self.clock, store=store, bus=events, ids=AccountIds(account.number),
            )
            session = _Session(account, kernel, events, StrategyBook(cfg.default_strategies, self.clock))
            if isinstance(store, LedgerSource):
                self._restore(session, store.load())
            saved = self._bot_states.load(user_id)
            if saved is not None:
                self._restore_bot(session, saved)
            self._sessions[user_id] = session
        return session

    def _restore(self, session: _Session, snapshot: LedgerSnapshot) -> None:
        """Bring back what the account's store acknowledged: balances, positions, working orders, ids."""
        if not snapshot.sequence:
            return  # nothing was ever committed
        symbols = ({p.symbol for p in snapshot.positions} | {o.symbol for o in snapshot.open_orders}
                   | set(snapshot.leverage))
        for symbol in sorted(symbols):
            self._ensure_market(session, self.instrument(symbol))
        session.kernel.restore(snapshot)

    def _restore_bot(self, session: _Session, saved: BotSnapshot) -> None:
        """Bring back the user's strategy settings and bot; a running bot is re-attached as start_bot attaches it."""
        session.strategies.restore(saved.strategies)
        user_id = session.account.user_id
        counters = (dict(saved.signals_total), dict(saved.signals_today), saved.signals_day)
        bot = BotState(False, saved.paper, None, [], *counters)
        if saved.running:
            refusal = None if saved.paper else self._live_refusal(user_id)
            if refusal is not None:
                log.warning("the bot of user %s was trading live and comes back stopped: %s", user_id, refusal)
            else:
                active: dict[str, dict[str, Any]] = {}
                for strategy in saved.active:
                    try:
                        params = restore_parameters(strategy.name, strategy.parameters)
                    except NotFoundError:
                        log.warning("strategy %r of the running bot of user %s is no longer registered; "
                                    "it is not resumed", strategy.name, user_id)
                        continue
                    active[strategy.name] = (params if params is not None
                                             else session.strategies.parameters(strategy.name))
                # the original started_at: the uptime goes on across the restart
                bot = BotState(True, saved.paper, saved.started_at or self.clock.now(), list(active), *counters,
                               parameters=active)
                self._attach_bot(session, bot)
        session.bot = bot

    def _attach_bot(self, session: _Session, bot: BotState) -> None:
        """Host fresh instances of the bot's active strategies in the slot of every bot market."""
        for symbol in self.config.bot_symbols:
            instrument = self.instrument(symbol)
            self._ensure_market(session, instrument)
            slot = session.slots.get(instrument.symbol)
            if slot is None:
                slot = session.slots[instrument.symbol] = BotSlot()
                session.kernel.add_strategy(instrument.symbol, slot)
            slot.load({**{name: create_strategy(name, bot.parameters[name]) for name in bot.active},
                       **session.hosted.get(instrument.symbol, {})})

    async def _save_bot(self, session: _Session, bot: BotState, book: StrategyBook) -> None:
        """Persist the bot and strategy settings of the account (lock held) before the change is acknowledged."""
        snapshot = BotSnapshot(
            bot.running, bot.paper, bot.started_at,
            tuple(ActiveStrategy(name, dict(bot.parameters.get(name, {}))) for name in bot.active),
            dict(bot.signals_total), dict(bot.signals_today), bot.today, book.saved())
        user_id = session.account.user_id
        if self.config.offload_commands:
            await asyncio.to_thread(self._bot_states.save, user_id, snapshot)
        else:
            self._bot_states.save(user_id, snapshot)

    async def resume_bots(self) -> int:
        """Rebuild the session of every user whose saved bot runs, so it trades before they call; return how many.

        One user's failure is logged and does not keep the others' bots from resuming.
        """
        if self.config.offload_commands:
            user_ids = await asyncio.to_thread(self._bot_states.running_user_ids)
        else:
            user_ids = self._bot_states.running_user_ids()
        resumed = 0
        for user_id in user_ids:
            try:
                if self._session(user_id).bot.running:
                    resumed += 1
            except Exception:  # a boundary: one account's bad state must not keep the others stopped
                log.exception("trading: could not resume the bot of user %s", user_id)
        return resumed

    def instrument(self, symbol: str) -> Instrument:
        """The perpetual future ``symbol`` names in any spelling; NotFoundError naming the symbol otherwise."""
        cached = self._instruments.get(symbol)
        if cached is not None:
            return cached
        try:
            instrument = self.market.catalog.resolve(symbol, kind=InstrumentKind.PERPETUAL)
        except NotFoundError:
            raise NotFoundError("symbol", symbol,
                                message=f"symbol {symbol!r} is not a tradable perpetual future (e.g. BTCUSDT)") from None
        self._instruments[symbol] = instrument
        return instrument

    def _body_instrument(self, symbol: str) -> Instrument:
        try:
            return self.instrument(symbol)
        except NotFoundError:
            raise InvalidInputError(f"symbol {symbol!r} is not a tradable perpetual future (e.g. BTCUSDT)",
                                    field="symbol") from None

    def _ensure_market(self, session: _Session, instrument: Instrument) -> None:
        kernel = session.kernel
        if instrument.symbol not in kernel.markets:
            leverage = min(self.config.default_leverage, max(instrument.max_leverage, 1))
            kernel.add_market(instrument, PaperBroker(lot_size=instrument.lot_size), leverage=leverage)

    async def _run(self, session: _Session, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the account's kernel (lock held by the caller), then publish what it did."""
        result = await asyncio.to_thread(fn) if self.config.offload_commands else fn()
        await self._publish(session)
        return result

    async def _mark(self, session: _Session, instrument: Instrument) -> Decimal:
        """Bring the kernel's price of ``instrument`` up to date (lock held); return it."""
        price = await self.prices.current(instrument)
        self._ensure_market(session, instrument)
        session.kernel.on_price(instrument.symbol, price)
        return price

    async def _mark_all(self, session: _Session) -> None:
        for symbol in list(session.kernel.ledger.account.positions):
            await self._mark(session, self.instrument(symbol))
        await self._publish(session)

    async def account(self, user_id: int) -> PaperAccount:
        """The user's paper account (created with the configured balance on first use)."""
        return self._session(user_id).account

    # -- commands --------------------------------------------------------------------------

    async def place_order(self, user_id: int, *, symbol: str, side: OrderSide, type: OrderType,
                          quantity: Decimal, price: Decimal | None = None, stop_price: Decimal | None = None,
                          stop_loss: Decimal | None = None, take_profit: Decimal | None = None,
                          reduce_only: bool = False, time_in_force: TimeInForce = TimeInForce.GTC,
                          strategy: str | None = None) -> Order:
        """Place an order; a paper market order fills at once at the current price.

        Raises InvalidInputError naming the field (bad symbol, quantity below one lot, a limit
        without ``price``, a stop without ``stop_price``, brackets on the wrong side),
        InsufficientBalanceError (details ``required``/``available`` in the settlement
        currency) and OrderRejectedError (``reduce_only`` with no position, risk refusals).
        """
        instrument = self._body_instrument(symbol)
        session = self._session(user_id)
        command = SubmitOrder(symbol=instrument.symbol, side=side, type=type, quantity=quantity, price=price,
                              stop_price=stop_price, time_in_force=time_in_force, reduce_only=reduce_only,
                              stop_loss=stop_loss, take_profit=take_profit, strategy=strategy)
        async with session.lock:
            mark = await self._mark(session, instrument)
            available = session.kernel.available_margin()
            result = await self._run(session, lambda: session.kernel.handle(command))
        order: Order = result.order
        if order.status is OrderStatus.REJECTED:
            self._raise_rejection(session, order, mark, available)
        return order

    def _raise_rejection(self, session: _Session, order: Order, mark: Decimal, available: Decimal) -> None:
        if order.reason_code == INSUFFICIENT_BALANCE:
            leverage = session.kernel.markets[order.symbol].leverage
            quantity = order.quantity or ZERO
            notional = _C.multiply(quantity, order.price or mark)
            required = _C.add(_C.divide(notional, Decimal(leverage)), _C.multiply(notional, self.config.taker_fee))
            raise InsufficientBalanceError(
                "Insufficient balance to place order: " + (order.reason or ""),
                details={"required": required, "available": available, "order_id": order.id,
                         "asset": self.config.currency})
        raise OrderRejectedError(order.reason or "order rejected", code="ORDER_REJECTED",
                                 details={"order_id": order.id, "reason_code": order.reason_code})

    async def cancel_order(self, user_id: int, order_id: str) -> Order:
        """Cancel an open order of the user's; NotFoundError for an order id they do not have.

        A filled, cancelled or rejected order raises OrderRejectedError; so does the
        liquidation order that guards a position.
        """
        session = self._session(user_id)
        async with session.lock:
            order = session.kernel.orders.get(order_id)
            if order is None:
                raise NotFoundError("order", order_id)
            if not order.status.is_open:
                raise OrderRejectedError(f"order {order_id} is {order.status.value}; only open orders can be cancelled",
                                         code="ORDER_REJECTED", details={"order_id": order_id,
                                                                         "status": order.status.value})
            if order.tag == ExitReason.LIQUIDATION.value:
                raise OrderRejectedError(f"order {order_id} is the liquidation of a position and cannot be cancelled",
                                         code="ORDER_REJECTED", details={"order_id": order_id})
            result = await self._run(session, lambda: session.kernel.handle(CancelOrder(order_id)))
        return result.order

    async def close_position(self, user_id: int, symbol: str, quantity: Decimal | None = None) -> CloseResult:
        """Close the position in ``symbol`` at market, all of it or ``quantity`` (partial close).

        Raises NotFoundError (code POSITION_NOT_FOUND) when there is no such position.
        """
        session = self._session(user_id)
        try:
            instrument = self.instrument(symbol)
        except NotFoundError:
            raise NotFoundError("position", symbol, code="POSITION_NOT_FOUND") from None
        async with session.lock:
            if session.kernel.position(instrument.symbol) is None:
                raise NotFoundError("position", symbol, message=f"no open position in {symbol}",
                                    code="POSITION_NOT_FOUND")
            await self._mark(session, instrument)
            result = await self._run(session, lambda: session.kernel.handle(ClosePosition(instrument.symbol, quantity)))
        return _close_result(result.order, result.events)

    async def close_all(self, user_id: int) -> list[CloseResult]:
        """Close every open position at market; one result per position."""
        session = self._session(user_id)
        async with session.lock:
            return await self._close_all_locked(session)

    async def _close_all_locked(self, session: _Session) -> list[CloseResult]:
        for symbol in list(session.kernel.ledger.account.positions):
            await self._mark(session, self.instrument(symbol))
        result = await self._run(session, lambda: session.kernel.handle(CloseAllPositions()))
        return [_close_result(order, result.events) for order in result.orders]

    async def set_leverage(self, user_id: int, symbol: str, leverage: int) -> LeverageView:
        """Set the leverage of new positions in ``symbol``.

        Raises InvalidInputError naming ``leverage`` and the instrument's maximum when out of
        bounds, NotFoundError for an unknown symbol.
        """
        instrument = self.instrument(symbol)
        session = self._session(user_id)
        if leverage < 1 or leverage > instrument.max_leverage:
            raise InvalidInputError(
                f"leverage {leverage} is outside 1..{instrument.max_leverage}, the {instrument.symbol} maximum",
                field="leverage", details={"leverage": leverage, "max_leverage": instrument.max_leverage})
        async with session.lock:
            self._ensure_market(session, instrument)
            await self._run(session, lambda: session.kernel.handle(SetLeverage(instrument.symbol, leverage)))
        return LeverageView(instrument.symbol, leverage, instrument.max_leverage)

    # -- queries ---------------------------------------------------------------------------

    async def balance(self, user_id: int, asset: str | None = None) -> BalanceView:
        """Wallet balances (``locked`` is margin in use), equity and margin at current prices."""
        session = self._session(user_id)
        async with session.lock:
            await self._mark_all(session)
            acct = session.kernel.ledger.account
            marks = session.kernel.marks()
            balances = [b for b in acct.balances() if asset is None or b.asset == asset.strip().upper()]
            return BalanceView(balances, acct.equity(marks), acct.available_margin(marks), acct.used_margin,
                               acct.margin_level(marks))

    async def positions(self, user_id: int, symbol: str | None = None,
                        side: PositionSide | None = None) -> PositionsView:
        """Open positions at current prices, optionally of one symbol and side."""
        session = self._session(user_id)
        wanted = self.instrument(symbol).symbol if symbol else None
        async with session.lock:
            await self._mark_all(session)
            marks = session.kernel.marks()
            views = []
            for p in session.kernel.ledger.account.positions.values():
                if (wanted and p.symbol != wanted) or (side and p.side is not side):
                    continue
                views.append(self._position_view(p, marks[p.symbol]))
        total_pnl = sum((v.unrealized_pnl for v in views), ZERO)
        total_margin = sum((v.position.margin for v in views), ZERO)
        return PositionsView(views, total_pnl, total_margin)

    def _position_view(self, p: Position, mark: Decimal) -> PositionView:
        pnl = p.unrealized_pnl(mark)
        cost = p.cost
        pct = _C.divide(_C.multiply(pnl, 100), cost) if cost else ZERO
        liq = p.liquidation_price(self.config.maintenance_margin_rate)
        if liq is not None:
            liq = self.instrument(p.symbol).round_price(liq, ROUND_CEILING if p.side is PositionSide.LONG
                                                        else ROUND_FLOOR)
        return PositionView(p, mark, pnl, pct, liq)

    def _trades(self, session: _Session) -> Sequence[RoundTrip]:
        if self._trade_query is not None:
            return self._trade_query.closed_trades(session.account)
        return session.kernel.ledger.trades

    async def trades(self, user_id: int, *, symbol: str | None = None, start: datetime | None = None,
                     end: datetime | None = None, limit: int = 100, offset: int = 0) -> TradePage:
        """Closed trades newest first (by exit time), a page of them, the total count and their stats.

        Raises InvalidInputError for ``start`` after ``end``, ``limit`` outside 1..1000 or a
        negative ``offset``.
        """
        if start is not None and end is not None and start > end:
            raise InvalidInputError(f"start_time {start.isoformat()} is after end_time {end.isoformat()}",
                                    field="start_time")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit {limit} must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInputError(f"offset {offset} must be 0 or more", field="offset")
        wanted = self.instrument(symbol).symbol if symbol else None
        session = self._session(user_id)
        async with session.lock:
            rows = [t for t in self._trades(session)
                    if (wanted is None or t.symbol == wanted) and (start is None or t.exit_at >= start)
                    and (end is None or t.exit_at <= end)]
        rows.reverse()
        return TradePage(rows[offset:offset + limit], len(rows), trade_stats(rows))

    async def pnl(self, user_id: int, period: Period = Period.DAILY) -> PnlReport:
        """Realized P&L of trades closed in the period (UTC), unrealized P&L now, per strategy and symbol."""
        session = self._session(user_id)
        now = self.clock.now()
        begin = period_start(period, now)
        async with session.lock:
            await self._mark_all(session)
            acct = session.kernel.ledger.account
            unrealized = acct.unrealized_pnl(session.kernel.marks())
            rows = [t for t in self._trades(session) if begin is None or t.exit_at >= begin]
        stats = trade_stats(rows)
        first = begin.date() if begin is not None else (rows[0].exit_at.date() if rows else None)
        return PnlReport(period, first, stats.total_pnl, unrealized, stats, group_pnl(rows, strategy_of),
                         group_pnl(rows, lambda t: t.symbol))

    # -- strategies and the bot ------------------------------------------------------------

    async def strategies(self, user_id: int) -> list[StrategyView]:
        """Every registered strategy with the user's settings and its bot performance."""
        session = self._session(user_id)
        book = session.strategies
        return book.views(self._trades(session), session.bot)

    async def update_strategy(self, user_id: int, name: str, *, enabled: bool | None = None,
                              parameters: dict[str, Any] | None = None) -> StrategyView:
        """Enable/disable a strategy or change its parameters (validated against its schema).

        Raises NotFoundError for an unknown strategy, InvalidInputError naming ``parameters.<name>``.
        """
        session = self._session(user_id)
        async with session.lock:
            book = session.strategies.copy()
            book.update(name, enabled=enabled, parameters=parameters)
            await self._save_bot(session, session.bot, book)
            session.strategies = book
        return book.views(self._trades(session), session.bot, only=name)[0]

    async def start_bot(self, user_id: int, *, paper: bool = True, strategies: list[str] | None = None) -> BotState:
        """Run the user's enabled strategies (or ``strategies``) on the live feed for their account.

        Live mode (``paper=False``) is refused with InvalidInputError naming ``paper_trading``
        unless the user has stored exchange keys and the server allows live trading.
        """
        if not paper:
            refusal = self._live_refusal(user_id)
            if refusal is not None:
                raise InvalidInputError(refusal, field="paper_trading")
        session = self._session(user_id)
        async with session.lock:
            book = session.strategies.copy()
            names = book.activate(strategies)
            for symbol in self.config.bot_symbols:  # refuse a misconfigured market before anything is saved
                self.instrument(symbol)
            bot = session.bot.started(paper=paper, active={name: book.parameters(name) for name in names},
                                      now=self.clock.now())
            await self._save_bot(session, bot, book)
            session.strategies, session.bot = book, bot
            self._attach_bot(session, bot)
        return bot

    def _live_refusal(self, user_id: int) -> str | None:
        """Why the user's bot may not trade live (no stored keys, live trading off), or None if it may."""
        if not self._keys.has_keys(user_id):
            return ("paper_trading false needs stored exchange API keys and none are stored for this user; "
                    "store them first or start with paper_trading true")
        if not self.config.live_trading:
            return "live trading is turned off on this server; start with paper_trading true"
        return None

    async def stop_bot(self, user_id: int, *, close_positions: bool = False) -> BotStopped:
        """Stop the bot (strategies stop placing orders); optionally close every position."""
        session = self._session(user_id)
        async with session.lock:
            bot = session.bot.stopped()
            await self._save_bot(session, bot, session.strategies)
            for symbol, slot in session.slots.items():
                slot.load(dict(session.hosted.get(symbol, {})))
            session.bot = bot
            closed = await self._close_all_locked(session) if close_positions else []
            return BotStopped(len(session.kernel.ledger.account.positions), closed)

    async def bot_status(self, user_id: int) -> BotStatusView:
        """Whether the bot runs, since when, its strategies with today's signals, and today's trading."""
        session = self._session(user_id)
        now = self.clock.now()
        bot = session.bot
        book = session.strategies
        strategies = [(name, book.enabled(name), bot.today_count(name, now)) for name in book.names()]
        today = period_start(Period.DAILY, now)
        daily = trade_stats(t for t in self._trades(session) if today is None or t.exit_at >= today)
        uptime = int((now - bot.started_at).total_seconds()) if bot.running and bot.started_at else 0
        return BotStatusView(bot.running, bot.paper, bot.started_at if bot.running else None, uptime, strategies,
                             daily)

    async def host_strategies(self, user_id: int, host: str, strategies: Mapping[str, Strategy]) -> None:
        """Run ``strategies`` (symbol → fresh instance) in the user's account under the name ``host``.

        They sit beside the bot's strategies in each market's slot and see the same live 1m bars
        (whether or not the bot runs); their orders carry ``host`` as strategy and publish signals
        on the user's ``signals`` channel like the bot's. A call replaces what ``host`` ran before;
        ``{}`` stops it. Raises NotFoundError naming a symbol that is not a perpetual future.
        """
        instruments = {symbol: self.instrument(symbol) for symbol in strategies}
        session = self._session(user_id)
        async with session.lock:
            before = {symbol: set(hosted) for symbol, hosted in session.hosted.items()}
            for hosted in session.hosted.values():
                hosted.pop(host, None)
            for symbol, strategy in strategies.items():
                instrument = instruments[symbol]
                self._ensure_market(session, instrument)
                session.hosted.setdefault(instrument.symbol, {})[host] = strategy
                if instrument.symbol not in session.slots:
                    slot = session.slots[instrument.symbol] = BotSlot()
                    session.kernel.add_strategy(instrument.symbol, slot)
            for symbol, slot in session.slots.items():
                own = {k: v for k, v in slot.inner.items() if k not in before.get(symbol, ())}
                slot.load({**own, **session.hosted.get(symbol, {})})

    async def orders(self, user_id: int, *, limit: int = 500) -> list[Order]:
        """The account's orders, newest first, at most ``limit``: every order its ledger store kept, or those in memory."""
        session = self._session(user_id)
        lister = getattr(session.kernel.store, "list_orders", None)
        async with session.lock:
            if lister is None:
                rows = sorted(session.kernel.orders.values(), key=lambda o: o.created_at, reverse=True)
                return rows[:limit]
        if self.config.offload_commands:
            return await asyncio.to_thread(lister, limit=limit)
        return lister(limit=limit)

    # -- backtests ---------------------------------------------------------------------------

    async def submit_backtest(self, principal: Principal, *, strategy: str, symbol: str, start: datetime,
                              end: datetime, initial_balance: Decimal, leverage: int, commission: Decimal,
                              parameters: dict[str, Any] | None = None, timeframe: str | None = None) -> BacktestView:
        """Queue a deterministic backtest of a registered strategy over the symbol's bars (a job).

        Raises InvalidInputError naming the field: unknown strategy or bad parameters, unknown
        symbol, leverage above the instrument's maximum, ``start`` not before ``end``, no bars.
        """
        if self._jobs is None:
            raise InvalidInputError("backtests need the job service, which this server has not started",
                                    field="strategy")
        try:
            params = create_strategy(strategy, parameters or {}).params
        except NotFoundError:
            raise InvalidInputError(f"strategy {strategy!r} is not registered", field="strategy") from None
        instrument = self._body_instrument(symbol)
        if not 1 <= leverage <= instrument.max_leverage:
            raise InvalidInputError(
                f"leverage {leverage} is outside 1..{instrument.max_leverage}, the {instrument.symbol} maximum",
                field="leverage", details={"leverage": leverage, "max_leverage": instrument.max_leverage})
        if start >= end:
            raise InvalidInputError(f"start_date {start.date()} must be before end_date {end.date()}",
                                    field="start_date")
        tf = timeframe or self.config.backtest_timeframe
        frame = await asyncio.to_thread(self.market.history, instrument, tf, start, end)
        if len(frame) < 2:
            raise InvalidInputError(f"no {tf} bars of {instrument.symbol} between {start.date()} and {end.date()}",
                                    field="start_date")
        job_params = {
            "strategy": strategy, "symbol": instrument.symbol, "timeframe": tf,
            "parameters": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in params.items()},
            "initial_balance": str(initial_balance), "leverage": leverage, "commission": str(commission),
            "currency": instrument.currency, "lot_size": str(instrument.lot_size), "bars": bars_to_columns(frame),
        }
        view = await self._jobs.submit(principal, JOB_TYPE.name, job_params)
        return _backtest_view(view.job)

    async def backtest(self, principal: Principal, backtest_id: str) -> BacktestView:
        """A backtest's status, progress and (once completed) result; NotFoundError unless it is the caller's."""
        if self._jobs is None or not backtest_id.startswith("bt_"):
            raise NotFoundError("backtest", backtest_id)
        try:
            view = await self._jobs.get(principal, backtest_id[3:])
        except NotFoundError:
            raise NotFoundError("backtest", backtest_id) from None
        if view.job.type != JOB_TYPE.name:
            raise NotFoundError("backtest", backtest_id)
        return _backtest_view(view.job)

    # -- market data ------------------------------------------------------------------------

    async def run_market_data(self) -> None:
        """Resume the bots that were running, then follow the live feed.

        Ticks update prices and match resting orders; closed bars and book updates drive the bots.
        """
        sub = self._bus.subscribe("market:*", "bars:*", "book:*", maxsize=50_000, lossless=False)
        try:
            await self.resume_bots()  # subscribed first: the resumed bots miss no bar
            while True:
                topic, message = await sub.get()
                try:
                    await self.on_market_message(topic, message)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad message or strategy must not stop the feed for every account
                    log.exception("trading: failed to apply %s", topic)
        finally:
            sub.close()

    async def on_market_message(self, topic: str, message: dict[str, Any]) -> None:
        """Apply one live-feed message (``market:``, ``bars:`` or ``book:`` topic) to the accounts it concerns."""
        kind, _, key = topic.partition(":")
        data = message.get("data") or {}
        if kind == "market":
            price = Decimal(str(data["price"]))
            self.prices.update(key, price)
            for session in list(self._sessions.values()):
                kernel = session.kernel
                if key in kernel.markets and (kernel.position(key) is not None or kernel.open_orders(key)):
                    async with session.lock:
                        had_position = kernel.position(key) is not None
                        await self._run(session, lambda k=kernel: k.on_price(key, price))
                        if had_position and kernel.position(key) is not None:
                            await self._publish_position(session, key)
        elif kind == "bars":
            opened = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00"))
            bar = Bar(opened, *(Decimal(str(data[c])) for c in ("open", "high", "low", "close", "volume")))
            for session in self._bot_sessions(key):
                async with session.lock:
                    await self._run(session, lambda k=session.kernel: k.on_bar(key, bar, opened + timedelta(minutes=1)))
        elif kind == "book":
            at = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00"))
            book = BookTop(at, tuple((Decimal(str(p)), Decimal(str(s))) for p, s in data.get("bids", [])),
                           tuple((Decimal(str(p)), Decimal(str(s))) for p, s in data.get("asks", [])))
            for session in self._bot_sessions(key):
                async with session.lock:
                    await self._run(session, lambda k=session.kernel: k.on_book(key, book))

    def _bot_sessions(self, symbol: str) -> list[_Session]:
        # the bot's strategies and hosted ones (host_strategies) share the slot; an empty slot idles
        return [s for s in self._sessions.values() if symbol in s.slots and s.slots[symbol].inner]

    # -- publishing -------------------------------------------------------------------------

    async def _publish(self, session: _Session) -> None:
        """Turn the kernel's pending events (and bot signals) into channel messages on the user's topics."""
        events: list[Event] = session.events.events
        signals = [s for slot in session.slots.values() for s in slot.drain()]
        if not events and not signals:
            return
        session.events.events = []
        now = self.clock.now()
        uid = session.account.user_id
        kernel = session.kernel
        order_ids: dict[str, None] = {}
        symbols: dict[str, PositionSide | None] = {}
        balance_changed = False
        for e in events:
            if isinstance(e, OrderFilled):
                order_ids[e.fill.order_id] = None
            elif isinstance(e, OrderAccepted | OrderCancelled | OrderRejected | OrderDenied | OrderExpired):
                order_ids[e.order_id] = None
            elif isinstance(e, PositionOpened | PositionChanged | PositionClosed):
                symbols[e.symbol] = e.side
            elif isinstance(e, PositionLiquidated):
                symbols.setdefault(e.symbol, None)
            elif isinstance(e, BalanceChanged):
                balance_changed = True
        for order_id in order_ids:
            await self._bus.publish(user_topic(uid, "orders"), push.order_message(kernel.orders[order_id], now))
        for symbol, side in symbols.items():
            await self._bus.publish(user_topic(uid, "positions"),
                                    push.position_message(symbol, kernel.position(symbol), side, kernel.mark(symbol),
                                                          now))
        if balance_changed or symbols:
            acct = kernel.ledger.account
            marks = kernel.marks()
            await self._bus.publish(user_topic(uid, "account"), push.account_message(
                acct.equity(marks), acct.wallet, acct.available_margin(marks), acct.used_margin, acct.currency, now))
        if signals:
            for signal in signals:
                session.bot.count(signal)
            await self._save_bot(session, session.bot, session.strategies)
        for signal in signals:
            await self._bus.publish(user_topic(uid, "signals"), push.signal_message(
                signal.strategy, signal.symbol, signal.action, signal.price, signal.at,
                stop_loss=signal.stop_loss, take_profit=signal.take_profit))

    async def _publish_position(self, session: _Session, symbol: str) -> None:
        kernel = session.kernel
        await self._bus.publish(user_topic(session.account.user_id, "positions"),
                                push.position_message(symbol, kernel.position(symbol), None, kernel.mark(symbol),
                                                      self.clock.now()))


def _backtest_view(job: Any) -> BacktestView:
    return BacktestView("bt_" + job.id, job.status.value, job.progress, job.result, job.error)


def _close_result(order: Order, events: list[Event]) -> CloseResult:
    trips = [e.trade for e in events if isinstance(e, TradeClosed)]
    # a close-all command books several orders: keep the trades of this order's symbol
    mine = [t for t in trips if t.symbol == order.symbol]
    return CloseResult(order, sum((t.pnl for t in mine), ZERO), mine)


__all__ = ["AccountIds", "BacktestView", "BalanceView", "BotStatusView", "BotStopped", "CloseResult", "LeverageView",
           "MemoryPaperAccounts", "PaperAccount", "PnlReport", "PositionView", "PositionsView", "TradePage",
           "TradingConfig", "TradingService"]
