"""The Breakout engine: one state machine per user, trading their paper account through the kernel.

Start (a preset, paper mode) scans the preset's universe (:mod:`~quantdesk.services.breakout_scanner`),
takes the best ``max_candidates`` markets and hosts one ``breakout_levels`` strategy per market
in the user's account (:meth:`TradingService.host_strategies`): the live 1m bars drive them
through the account's kernel, as they drive the Scalper bot, so every order, fill and position
is the account's (one ledger; the Scalper surface shows the same ones). The instances share a
:class:`~quantdesk.strategies.breakout_levels.SlotBook`: the preset's slots cap the markets held
at once, and a pause or a risk halt closes it to new entries while open positions keep their
stop and target.

The engine follows the account on the bus (``bars:*``, ``u7:orders``, ``u7:positions``,
``u7:signals``): bars count as cycles and build levels, the engine's signals, fills and
positions move the state machine (:mod:`~quantdesk.services.breakout_states`), each closed
trade updates the day's R and the losing streak from the ledger's trade history (a daily loss
limit in R or too many losses in a row pause the engine). Each user's engine events go to
their bus topic ``u7:engine`` in the Breakout stream's shape (``ENGINE_UPDATE``,
``POSITION_UPDATE``, ``ORDER_FILLED``, ...).

Every transition is saved (:class:`~quantdesk.services.breakout_ports.EngineStateStore`) before
it is acknowledged. At start-up an engine that was running comes back running: same preset
document, markets and ``started_at``; a paused one comes back paused; its levels are rebuilt
from the next bars (state ``LEVEL_BUILDING``). ``ERROR`` and ``EMERGENCY`` come back as they were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from quantdesk.core.clock import Clock
from quantdesk.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OrderRejectedError,
    QuantdeskError,
)
from quantdesk.core.instruments import Instrument
from quantdesk.core.orders import Order
from quantdesk.core.portfolio import ExitReason, RoundTrip
from quantdesk.engine.clocks import WallClock
from quantdesk.engine.strategy import create_strategy
from quantdesk.services import breakout_presets as presets
from quantdesk.services.breakout_analytics import (
    EquityPoint,
    Series,
    daily_r,
    equity_curve,
    max_drawdown_r,
    performance,
    trailing_losses,
)
from quantdesk.services.breakout_ports import (
    EngineSnapshot,
    EngineStateStore,
    MemoryEngineStateStore,
    MemoryPresetStore,
    PresetStore,
)
from quantdesk.services.breakout_scanner import Candidate, rank, score_symbol
from quantdesk.services.breakout_states import ACTIVE, COMMANDS, RUNNING, EngineState, Trigger, next_state
from quantdesk.services.push import stamp
from quantdesk.services.topics import user_topic
from quantdesk.services.trading import TradingService
from quantdesk.services.trading_views import PositionView
from quantdesk.strategies.breakout_levels import BreakoutLevels, SlotBook

log = logging.getLogger(__name__)

HOST = "breakout_engine"  # the strategy name the engine's orders and trades carry
STRATEGY = "breakout_levels"
ENGINE_CHANNEL = "engine"
MODES = ("paper", "live")
DEFAULT_PRESET = "breakout_v1"


def engine_topic(user_id: int) -> str:
    """The bus topic of one user's Breakout event stream (``u7:engine``)."""
    return user_topic(user_id, ENGINE_CHANNEL)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class ScannerStatus:
    status: str = "idle"
    last_scan: datetime | None = None
    candidates_found: int = 0
    scan_duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class ScanResult:
    candidates: list[Candidate]
    total_scanned: int
    passed_filters: int


@dataclass
class _Engine:
    """The live part of one user's engine (the snapshot is what is saved)."""

    snapshot: EngineSnapshot
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: SlotBook | None = None
    strategies: dict[str, BreakoutLevels] = field(default_factory=dict)
    open_symbols: set[str] = field(default_factory=set)
    latency_ms: float = 0.0
    cycle_time: Series = field(default_factory=Series)
    position_counts: Series = field(default_factory=Series)
    events: Series = field(default_factory=Series)
    trade_r: Series = field(default_factory=Series)
    scanner: ScannerStatus = field(default_factory=ScannerStatus)

    @property
    def state(self) -> EngineState:
        return self.snapshot.state


@dataclass(frozen=True, slots=True)
class EngineStatusView:
    state: EngineState
    preset: str | None
    mode: str
    started_at: datetime | None
    slots: int
    open_positions: int
    latency_ms: float
    daily_r: Decimal
    consecutive_losses: int
    symbols: tuple[str, ...]
    reason: str | None
    kill_switch: bool


@dataclass(frozen=True, slots=True)
class BreakoutPosition:
    """An open position of the account with its R: ``initial_risk`` from the entry's stop (None without one)."""

    view: PositionView
    mode: str
    initial_risk: Decimal | None

    @property
    def pnl_r(self) -> Decimal | None:
        if not self.initial_risk:
            return None
        return self.view.unrealized_pnl / self.initial_risk


class BreakoutService:
    """Per-user Breakout engines over the trading service, plus presets, scanner and R analytics."""

    def __init__(self, trading: TradingService, bus: Any, *, states: EngineStateStore | None = None,
                 presets_store: PresetStore | None = None, system: Callable[[], dict[str, float]] | None = None,
                 clock: Clock | None = None, offload: bool = False):
        self.trading = trading
        self.market = trading.market
        self._bus = bus
        self._states: EngineStateStore = states or MemoryEngineStateStore()
        self._presets: PresetStore = presets_store or MemoryPresetStore()
        self._system = system or (lambda: {})
        self.clock: Clock = clock or WallClock()
        self._offload = offload
        self._engines: dict[int, _Engine] = {}
        self.initialized = False

    # -- storage ------------------------------------------------------------------------------

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args) if self._offload else fn(*args)

    async def _engine(self, user_id: int) -> _Engine:
        engine = self._engines.get(user_id)
        if engine is None:
            saved = await self._io(self._states.load, user_id)
            view = await self.trading.positions(user_id)
            fresh = _Engine(saved or EngineSnapshot(), open_symbols={v.position.symbol for v in view.positions})
            engine = self._engines.setdefault(user_id, fresh)
        return engine

    async def _commit(self, user_id: int, engine: _Engine, snapshot: EngineSnapshot) -> None:
        """Save ``snapshot`` (before anyone is told), make it current, publish ENGINE_UPDATE if the state moved."""
        await self._io(self._states.save, user_id, snapshot)
        engine.snapshot = snapshot
        await self._publish(user_id, "ENGINE_UPDATE", self._status_data(engine))

    async def _move(self, user_id: int, engine: _Engine, trigger: Trigger, **changes: Any) -> None:
        """Apply ``trigger`` through the table (ConflictError if refused) and save the new snapshot."""
        state = next_state(engine.state, trigger)
        await self._commit(user_id, engine, replace(engine.snapshot, state=state, **changes))

    async def _try(self, user_id: int, engine: _Engine, *triggers: Trigger) -> None:
        """Apply ``triggers`` in turn, each only if the current state accepts it (events, not commands)."""
        for trigger in triggers:
            try:
                state = next_state(engine.state, trigger)
            except ConflictError:
                continue
            if state is not engine.state:
                await self._commit(user_id, engine, replace(engine.snapshot, state=state))

    async def _publish(self, user_id: int, kind: str, data: dict[str, Any]) -> None:
        now = self.clock.now()
        await self._bus.publish(engine_topic(user_id), {"type": kind, "ts": _ms(now),
                                                        "data": {**data, "timestamp": _ms(now)}})

    # -- presets ------------------------------------------------------------------------------

    async def presets(self, user_id: int) -> list[dict[str, Any]]:
        """Every preset (built-in, with the user's changes), as list rows."""
        changes = await self._io(self._presets.load, user_id)
        return [presets.summary(name, presets.merge(doc, changes.get(name, {})))
                for name, doc in presets.BUILTIN.items()]

    async def preset(self, user_id: int, name: str) -> dict[str, Any]:
        """One preset's whole document with the user's changes; NotFoundError for an unknown name."""
        base = presets.BUILTIN.get(name)
        if base is None:
            raise NotFoundError("preset", name, message=f"preset {name!r} not found; presets are "
                                f"{', '.join(presets.BUILTIN)}")
        changes = await self._io(self._presets.load, user_id)
        return presets.merge(base, changes.get(name, {}))

    async def update_preset(self, user_id: int, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Change the sections ``body`` sends (key by key); the rest stays. InvalidInputError names the field.

        A running engine keeps the document it was started with until it is started again.
        """
        current = await self.preset(user_id, name)
        update = presets.validate_update(body)
        document = presets.merge(current, update)
        presets.check_document(document)
        changes = (await self._io(self._presets.load, user_id)).get(name, {})
        await self._io(self._presets.save, user_id, name, presets.merge(changes, update))
        return document

    async def _preset_for_start(self, user_id: int, name: str) -> dict[str, Any]:
        try:
            return await self.preset(user_id, name)
        except NotFoundError as err:
            raise InvalidInputError(err.message, field="preset") from None

    # -- engine commands ------------------------------------------------------------------------

    async def start(self, user_id: int, *, preset: str = DEFAULT_PRESET, mode: str = "paper") -> EngineStatusView:
        """Start the engine: scan, pick markets, host the strategy; IDLE → SCANNING → LEVEL_BUILDING.

        Raises InvalidInputError naming ``mode`` (unknown, or ``live``: the engine trades the paper
        account) or ``preset`` (unknown), ConflictError when the engine is not IDLE.
        """
        if mode not in MODES:
            raise InvalidInputError(f"mode {mode!r} is not one of {list(MODES)}", field="mode")
        if mode == "live":
            raise InvalidInputError("mode 'live' is refused: the Breakout engine trades the user's paper account "
                                    "on this server; start with mode 'paper'", field="mode")
        engine = await self._engine(user_id)
        async with engine.lock:
            next_state(engine.state, Trigger.START)
            document = await self._preset_for_start(user_id, preset)
            now = self.clock.now()
            await self._move(user_id, engine, Trigger.START, preset=preset, mode=mode, started_at=now,
                             config=document, symbols=(), losses_since=now, kill_switch=False, reason=None,
                             cycle_count=0, total_signals=0, consecutive_losses=0)
            await self._scan_and_host(user_id, engine)
            return await self._status_view(user_id, engine)

    async def _scan_and_host(self, user_id: int, engine: _Engine) -> None:
        """SCANNING → LEVEL_BUILDING with the best markets hosted, or → ERROR naming what failed."""
        document = engine.snapshot.config
        try:
            result = await self._scan(engine, document, None, limit=None)
            chosen = [c.instrument.symbol for c in result.candidates][:document["scanner_config"]["max_candidates"]]
            if not chosen:
                raise InvalidInputError("no symbol of scanner_config.symbols has enough bars to trade",
                                        field="scanner_config.symbols")
            await self._host(user_id, engine, document, chosen, entries_open=True)
        except QuantdeskError as err:
            await self._move(user_id, engine, Trigger.FAIL, reason=f"start failed: {err.message}")
            return
        await self._move(user_id, engine, Trigger.SCANNED, symbols=tuple(chosen))

    async def _host(self, user_id: int, engine: _Engine, document: dict[str, Any], symbols: list[str], *,
                    entries_open: bool) -> None:
        params = presets.strategy_parameters(document)
        slots = SlotBook(int(document["risk"]["max_concurrent_positions"]), open=entries_open)
        strategies: dict[str, BreakoutLevels] = {}
        for symbol in symbols:
            strategy = create_strategy(STRATEGY, params)
            strategy.slots = slots  # type: ignore[attr-defined]
            strategies[symbol] = strategy  # type: ignore[assignment]
        await self.trading.host_strategies(user_id, HOST, strategies)
        engine.slots, engine.strategies = slots, strategies
        view = await self.trading.positions(user_id)
        engine.open_symbols = {v.position.symbol for v in view.positions}
        for symbol in engine.open_symbols & set(symbols):
            slots.note(symbol, True)

    async def _unhost(self, user_id: int, engine: _Engine) -> None:
        if engine.slots is not None:
            engine.slots.open = False
        await self.trading.host_strategies(user_id, HOST, {})
        engine.slots, engine.strategies = None, {}

    async def stop(self, user_id: int) -> EngineStatusView:
        """Stop the engine (any state → IDLE); open positions stay with their stop and target."""
        engine = await self._engine(user_id)
        async with engine.lock:
            next_state(engine.state, Trigger.STOP)
            await self._unhost(user_id, engine)
            await self._move(user_id, engine, Trigger.STOP, started_at=None, kill_switch=False, reason=None)
            return await self._status_view(user_id, engine)

    async def command(self, user_id: int, command: str) -> EngineStatusView:
        """Run one of ``pause resume time_stop panic_exit kill_switch retry``.

        Raises InvalidInputError naming ``command`` for another word, ConflictError when the
        engine's state refuses it (e.g. ``resume`` unless PAUSED).
        """
        names = [c.value for c in COMMANDS]
        if command not in names:
            raise InvalidInputError(f"unknown command {command!r}; commands are {', '.join(names)}", field="command")
        trigger = Trigger(command)
        engine = await self._engine(user_id)
        async with engine.lock:
            next_state(engine.state, trigger)
            if trigger is Trigger.PAUSE:
                if engine.slots is not None:
                    engine.slots.open = False
                await self._move(user_id, engine, trigger, reason="paused by command")
            elif trigger is Trigger.RESUME:
                await self._resume(user_id, engine)
            elif trigger is Trigger.TIME_STOP:
                for symbol in sorted(engine.open_symbols & set(engine.snapshot.symbols)):
                    try:
                        await self.trading.close_position(user_id, symbol)
                    except NotFoundError:
                        pass  # closed by its stop meanwhile
                await self._move(user_id, engine, trigger)
            elif trigger in (Trigger.PANIC_EXIT, Trigger.KILL_SWITCH):
                await self._unhost(user_id, engine)
                await self._flatten(user_id)
                engine.open_symbols = set()
                latched = trigger is Trigger.KILL_SWITCH and engine.state is not EngineState.IDLE
                await self._move(user_id, engine, trigger, kill_switch=latched or engine.snapshot.kill_switch,
                                 reason=None if engine.state is EngineState.IDLE else f"{command} by command")
            elif trigger is Trigger.RETRY:
                if engine.snapshot.kill_switch:
                    raise ConflictError("the kill switch is engaged: stop the engine to clear it, then start it",
                                        code="ENGINE_STATE", details={"state": engine.state.name, "command": command})
                await self._move(user_id, engine, trigger, symbols=(), reason=None)
                await self._scan_and_host(user_id, engine)
            return await self._status_view(user_id, engine)

    async def _resume(self, user_id: int, engine: _Engine) -> None:
        snap = engine.snapshot
        limit = Decimal(str(snap.config["risk"]["daily_loss_limit_r"]))
        day_r = self._today_r(snap)
        if -day_r >= limit:
            raise ConflictError(f"today's loss {-day_r:.2f}R reached the daily limit of {limit}R; the engine may "
                                "resume tomorrow (00:00 UTC) or after the preset's risk.daily_loss_limit_r is raised "
                                "and the engine started again", code="DAILY_LOSS_LIMIT")
        if engine.slots is not None:
            engine.slots.open = True
        # an operator's resume starts a new losing streak
        await self._move(user_id, engine, Trigger.RESUME, reason=None, consecutive_losses=0,
                         losses_since=self.clock.now())
        await self._derive(user_id, engine)

    async def _flatten(self, user_id: int) -> None:
        """Close every position of the account and cancel its working orders."""
        await self.trading.close_all(user_id)
        for order in await self.trading.orders(user_id, limit=1000):
            if order.status.is_open and order.tag != ExitReason.LIQUIDATION.value:
                try:
                    await self.trading.cancel_order(user_id, order.id)
                except (NotFoundError, OrderRejectedError):
                    pass  # it filled or went with its position meanwhile

    # -- following the account -----------------------------------------------------------------

    async def run(self) -> None:
        """Bring back the engines that were running, then follow bars and the accounts on the bus."""
        sub = self._bus.subscribe("bars:*", "u*:orders", "u*:positions", "u*:signals", maxsize=50_000, lossless=True)
        try:
            await self.resume_engines()
            self.initialized = True
            while True:
                topic, message = await sub.get()
                try:
                    await self.on_message(topic, message)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad message or account must not stop every user's engine
                    log.exception("breakout: failed to apply %s", topic)
        finally:
            self.initialized = False
            sub.close()

    async def resume_engines(self) -> int:
        """Re-host the saved engines that were running; return how many came back."""
        resumed = 0
        for user_id in await self._io(self._states.active_user_ids):
            try:
                engine = await self._engine(user_id)
                async with engine.lock:
                    snap = engine.snapshot
                    if snap.state not in RUNNING:
                        continue  # ERROR and EMERGENCY wait for a command
                    if not snap.symbols:  # the server stopped mid-scan
                        await self._scan_and_host(user_id, engine)
                    else:
                        paused = snap.state is EngineState.PAUSED
                        await self._host(user_id, engine, snap.config, list(snap.symbols), entries_open=not paused)
                        if not paused:  # levels are rebuilt from the next bars
                            await self._commit(user_id, engine, replace(snap, state=EngineState.LEVEL_BUILDING))
                    resumed += 1
            except Exception:  # a boundary: one user's bad state must not keep the others stopped
                log.exception("breakout: could not resume the engine of user %s", user_id)
        return resumed

    async def on_message(self, topic: str, message: dict[str, Any]) -> None:
        """Apply one bus message: a closed bar (a cycle) or a user's order, position or signal."""
        kind, _, key = topic.partition(":")
        if kind == "bars":
            for user_id, engine in list(self._engines.items()):
                if engine.state in ACTIVE and key in engine.strategies:
                    await self._cycle(user_id, engine)
            return
        if not kind.startswith("u") or not kind[1:].isdigit():
            return
        user_id = int(kind[1:])
        data = message.get("data") or {}
        if key not in ("orders", "positions", "signals"):
            return
        engine = await self._engine(user_id)
        if key == "orders":
            await self._on_order(user_id, data)
        elif key == "positions":
            await self._on_position(user_id, engine, data)
        elif key == "signals":
            await self._on_signal(user_id, engine, data)

    async def _cycle(self, user_id: int, engine: _Engine) -> None:
        started = time.perf_counter()
        async with engine.lock:
            if engine.state not in ACTIVE:
                return
            engine.snapshot = replace(engine.snapshot, cycle_count=engine.snapshot.cycle_count + 1)
            await self._derive(user_id, engine)
            engine.position_counts.add(float(len(engine.open_symbols)))
        elapsed = time.perf_counter() - started
        engine.latency_ms = round(elapsed * 1000, 3)
        engine.cycle_time.add(elapsed)

    async def _derive(self, user_id: int, engine: _Engine) -> None:
        """Move between LEVEL_BUILDING, SIGNAL_WAIT and MANAGING as levels and positions say."""
        if any(s.levels is not None for s in engine.strategies.values()):
            await self._try(user_id, engine, Trigger.LEVELS_READY)
        held = engine.open_symbols & set(engine.snapshot.symbols)
        await self._try(user_id, engine, Trigger.POSITION_OPENED if held else Trigger.ALL_FLAT)

    async def _on_order(self, user_id: int, data: dict[str, Any]) -> None:
        order = {**_order_event(data), "symbol": self._spell(str(data.get("symbol")))}
        await self._publish(user_id, "ORDER_UPDATE", {"order": order})
        status = str(data.get("status"))
        extra = {"accepted": "ORDER_PLACED", "filled": "ORDER_FILLED", "cancelled": "ORDER_CANCELLED"}.get(status)
        if extra:
            await self._publish(user_id, extra, {"order": order})

    def _spell(self, symbol: str) -> str:
        """``BTCUSDT`` as the Breakout reference spells it (``BTC/USDT``)."""
        try:
            return self.trading.instrument(symbol).id.spell("slash")
        except NotFoundError:
            return symbol

    async def _on_position(self, user_id: int, engine: _Engine, data: dict[str, Any]) -> None:
        symbol = str(data.get("symbol") or "")
        quantity = data.get("quantity") or 0
        was_open = symbol in engine.open_symbols
        item = {"id": data.get("position_id"), "symbol": self._spell(symbol), "side": data.get("side"),
                "entry": data.get("entry_price"), "size": quantity, "pnlUsd": data.get("unrealized_pnl")}
        await self._publish(user_id, "POSITION_UPDATE", {"positions": [item]})
        if quantity and not was_open:
            await self._publish(user_id, "POSITION_OPENED", {"position": item})
        elif not quantity:
            await self._publish(user_id, "POSITION_CLOSED", {"position": item})
        async with engine.lock:
            if quantity:
                engine.open_symbols.add(symbol)
            else:
                engine.open_symbols.discard(symbol)
            if engine.state not in RUNNING or symbol not in engine.snapshot.symbols:
                return
            if quantity:
                return  # the signal that follows (or the next bar) moves the state: SIGNAL → SIZED → FILLED
            await self._count_trades(user_id, engine)
            if engine.state in ACTIVE:
                await self._derive(user_id, engine)

    async def _on_signal(self, user_id: int, engine: _Engine, data: dict[str, Any]) -> None:
        await self._publish(user_id, "SIGNAL", {"signal": {**data, "symbol": self._spell(str(data.get("symbol")))}})
        if data.get("strategy") != HOST or data.get("action") not in ("buy", "sell"):
            return
        async with engine.lock:
            engine.snapshot = replace(engine.snapshot, total_signals=engine.snapshot.total_signals + 1)
            engine.events.add(1.0)
            if engine.state not in ACTIVE:
                return
            filled = str(data.get("symbol")) in engine.open_symbols
            await self._try(user_id, engine, Trigger.SIGNAL, Trigger.SIZED,
                            Trigger.FILLED if filled else Trigger.REJECTED)
            await self._derive(user_id, engine)

    async def _engine_trades(self, user_id: int) -> list[RoundTrip]:
        page = await self.trading.trades(user_id, limit=1000)
        return [t for t in reversed(page.trades) if t.strategy == HOST]

    def _today(self) -> datetime:
        return datetime.combine(self.clock.now().date(), dtime(0), tzinfo=UTC)

    def _today_r(self, snap: EngineSnapshot) -> Decimal:
        return snap.daily_r if snap.daily_r_day == self.clock.now().date() else Decimal(0)

    async def _count_trades(self, user_id: int, engine: _Engine) -> None:
        """Recompute the day's R and the losing streak from the ledger; pause the engine past a limit."""
        trades = await self._engine_trades(user_id)
        snap = engine.snapshot
        day_r = daily_r(trades, self._today())
        streak = trailing_losses(trades, snap.losses_since)
        if trades and trades[-1].r_multiple is not None:
            engine.trade_r.add(float(trades[-1].r_multiple))
        risk = snap.config.get("risk", {})
        reason = None
        if -day_r >= Decimal(str(risk.get("daily_loss_limit_r", "inf"))):
            reason = f"daily loss limit reached: {day_r:.2f}R today (limit {risk['daily_loss_limit_r']}R)"
        elif streak >= int(risk.get("max_consecutive_losses", 10**9)):
            reason = f"{streak} consecutive losing trades (limit {risk['max_consecutive_losses']})"
        changes = {"daily_r": day_r, "daily_r_day": self.clock.now().date(), "consecutive_losses": streak}
        if reason is not None and engine.state in ACTIVE:
            if engine.slots is not None:
                engine.slots.open = False
            await self._move(user_id, engine, Trigger.RISK_HALT, reason=reason, **changes)
        else:
            await self._commit(user_id, engine, replace(snap, **changes))

    # -- views ---------------------------------------------------------------------------------

    def health_state(self) -> tuple[bool, bool]:
        """(initialized, running): the engine service follows the bus; some user's engine runs."""
        return self.initialized, any(e.state in RUNNING for e in self._engines.values())

    async def status(self, user_id: int) -> EngineStatusView:
        engine = await self._engine(user_id)
        return await self._status_view(user_id, engine)

    async def _status_view(self, user_id: int, engine: _Engine) -> EngineStatusView:
        snap = engine.snapshot
        document = snap.config or presets.BUILTIN[DEFAULT_PRESET]
        positions = await self.trading.positions(user_id)
        return EngineStatusView(snap.state, snap.preset, snap.mode, snap.started_at,
                                int(document["risk"]["max_concurrent_positions"]), len(positions.positions),
                                engine.latency_ms, self._today_r(snap), snap.consecutive_losses, snap.symbols,
                                snap.reason, snap.kill_switch)

    def _status_data(self, engine: _Engine) -> dict[str, Any]:
        snap = engine.snapshot
        return {"state": snap.state.name, "preset": snap.preset, "mode": snap.mode,
                "startedAt": stamp(snap.started_at) if snap.started_at else None,
                "openPositions": len(engine.open_symbols), "dailyR": round(float(self._today_r(snap)), 6),
                "consecutiveLosses": snap.consecutive_losses, "symbols": [self._spell(s) for s in snap.symbols],
                "reason": snap.reason}

    async def metrics(self, user_id: int) -> dict[str, Any]:
        """Uptime (s), cycles, mean cycle latency (ms), signals, the engine's closed trades, today's and max drawdown R."""
        engine = await self._engine(user_id)
        snap = engine.snapshot
        trades = await self._engine_trades(user_id)
        now = self.clock.now()
        uptime = int((now - snap.started_at).total_seconds()) if snap.started_at and snap.state in RUNNING else 0
        cycle = engine.cycle_time.summary()
        r_values = [float(t.r_multiple) for t in trades if t.r_multiple is not None]
        return {"uptime": uptime, "cycleCount": snap.cycle_count, "avgLatencyMs": round(float(cycle["mean"]) * 1000, 3),
                "totalSignals": snap.total_signals, "totalTrades": len(trades),
                "dailyPnlR": round(float(self._today_r(snap)), 6), "maxDrawdownR": round(max_drawdown_r(r_values), 6)}

    async def positions(self, user_id: int) -> list[BreakoutPosition]:
        """The account's open positions (whoever opened them), with R from each entry's stop."""
        engine = await self._engine(user_id)
        label = (engine.snapshot.config or presets.BUILTIN[DEFAULT_PRESET])["strategy_type"]
        view = await self.trading.positions(user_id)
        out = []
        for v in view.positions:
            p = v.position
            risks = [lot.initial_risk_per_unit * lot.quantity for lot in p.lots if lot.initial_risk_per_unit]
            mode = label if p.strategy == HOST else (p.strategy or "manual")
            out.append(BreakoutPosition(v, mode, sum(risks, Decimal(0)) if risks else None))
        return out

    async def orders(self, user_id: int) -> list[Order]:
        return await self.trading.orders(user_id)

    async def cancel_order(self, user_id: int, order_id: str) -> Order:
        return await self.trading.cancel_order(user_id, order_id)

    async def equity(self, user_id: int) -> list[EquityPoint]:
        """The account's equity after each closed trade, with cumulative R."""
        account = await self.trading.account(user_id)
        page = await self.trading.trades(user_id, limit=1000)
        return equity_curve(page.trades, account.initial_balance, account.created_at)

    async def performance(self, user_id: int) -> dict[str, Any]:
        page = await self.trading.trades(user_id, limit=1000)
        return performance(page.trades)

    # -- scanner -------------------------------------------------------------------------------

    def _resolve(self, symbols: list[str]) -> list[Instrument]:
        out, unknown = [], []
        for symbol in symbols:
            try:
                out.append(self.trading.instrument(symbol))
            except (NotFoundError, InvalidInputError):
                unknown.append(symbol)
        if unknown:
            raise InvalidInputError(f"not tradable perpetual futures: {', '.join(unknown)} (e.g. BTC/USDT)",
                                    field="symbols")
        return list({i.symbol: i for i in out}.values())

    async def scan(self, user_id: int, *, preset: str = DEFAULT_PRESET, limit: int = 10,
                   symbols: list[str] | None = None) -> ScanResult:
        """Score ``symbols`` (default: the preset's universe) and return the best ``limit``, sorted by score."""
        if not 1 <= limit <= 100:
            raise InvalidInputError(f"limit {limit} must be between 1 and 100", field="limit")
        document = await self._preset_for_start(user_id, preset)
        engine = await self._engine(user_id)
        result = await self._scan(engine, document, symbols, limit=limit)
        await self._publish(user_id, "SCAN_RESULT", {
            "candidates": [{"symbol": c.instrument.id.spell("slash"), "score": c.score} for c in result.candidates],
            "totalScanned": result.total_scanned, "passedFilters": result.passed_filters})
        return result

    async def _scan(self, engine: _Engine, document: dict[str, Any], symbols: list[str] | None,
                    limit: int | None) -> ScanResult:
        instruments = self._resolve(symbols if symbols else document["scanner_config"]["symbols"])
        status = engine.scanner
        status.status = "scanning"
        started = time.perf_counter()
        try:
            candidates = await asyncio.to_thread(self._score_all, instruments, document)
        finally:
            status.status = "idle"
        ranked = rank(candidates)
        status.last_scan = self.clock.now()
        status.candidates_found = sum(1 for c in ranked if c.passed)
        status.scan_duration_ms = int((time.perf_counter() - started) * 1000)
        return ScanResult(ranked[:limit] if limit else ranked, len(instruments), status.candidates_found)

    def _score_all(self, instruments: list[Instrument], document: dict[str, Any]) -> list[Candidate]:
        scanner = document["scanner_config"]
        out = []
        for instrument in instruments:
            frame = self.market.history_lookback(instrument, scanner["timeframe"], int(scanner["lookback_bars"]))
            candidate = score_symbol(instrument, frame, document)
            if candidate is not None:
                out.append(candidate)
        return out

    async def scanner_status(self, user_id: int) -> ScannerStatus:
        return (await self._engine(user_id)).scanner

    # -- system metrics ------------------------------------------------------------------------

    def system(self) -> dict[str, float]:
        """CPU, memory, disk, threads, files and connections of this process and machine."""
        return self._system()

    async def metrics_summary(self, user_id: int) -> dict[str, Any]:
        engine = await self._engine(user_id)
        return {"performance": self.system(),
                "engine": {"cycle_time": engine.cycle_time.summary(), "positions": engine.position_counts.summary()},
                "trading": {"events": engine.events.summary(), "pnl": engine.trade_r.summary()}}

    async def metrics_count(self, user_id: int) -> int:
        engine = await self._engine(user_id)
        return sum(s.count for s in (engine.cycle_time, engine.position_counts, engine.events, engine.trade_r))


def _order_event(data: dict[str, Any]) -> dict[str, Any]:
    return {"id": data.get("order_id"), "symbol": data.get("symbol"), "side": data.get("side"),
            "type": data.get("order_type"), "qty": data.get("quantity"), "filledQty": data.get("filled_quantity"),
            "price": data.get("avg_fill_price"), "status": data.get("status")}


__all__ = ["HOST", "BreakoutPosition", "BreakoutService", "EngineStatusView", "ScanResult", "ScannerStatus",
           "engine_topic"]
