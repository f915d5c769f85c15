"""The trading bot of one paper account: registered strategies run on live bars through the kernel.

The kernel sees one :class:`BotSlot` per market. While the bot runs, the slot hosts fresh
instances of the account's active strategies and passes every hook on to them; each order a
strategy places is recorded as a :class:`Signal` (counted per strategy and published by the
trading service). Stopping the bot empties the slot, so the kernel stays attached but idle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from quantdesk.core.market import BookTop
from quantdesk.core.portfolio import Fill
from quantdesk.engine.strategy import BarData, Strategy, StrategyContext


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy decision the bot acted on: ``action`` is buy, sell or close."""

    strategy: str
    symbol: str
    action: str
    price: Decimal | None
    at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class BotSlot(Strategy):
    """The one strategy the kernel runs per market for the bot; hosts the active strategies."""

    name = "bot"

    def __init__(self) -> None:  # no parameters of its own: skip the schema check of the base
        self.params = {}
        self.inner: dict[str, Strategy] = {}
        self.signals: list[Signal] = []

    def load(self, strategies: dict[str, Strategy]) -> None:
        """Host ``strategies`` (name → fresh instance) from the next bar on; ``{}`` idles the slot."""
        self.inner = dict(strategies)

    def prepare(self, data: BarData) -> None:
        for strategy in self.inner.values():
            strategy.prepare(data)

    def _each(self, ctx: StrategyContext, call: Callable[[Strategy, StrategyContext], Any]) -> None:
        for name, strategy in self.inner.items():
            # the kernel books orders under the slot's name: lend it the hosted strategy's name
            self.name = name
            try:
                call(strategy, _SignalContext(ctx, self, name))
            finally:
                self.name = "bot"

    def on_bar(self, ctx: StrategyContext) -> None:
        self._each(ctx, lambda s, c: s.on_bar(c))

    def on_book(self, ctx: StrategyContext, book: BookTop) -> None:
        self._each(ctx, lambda s, c: s.on_book(c, book))

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        for strategy in self.inner.values():
            strategy.on_fill(ctx, fill)

    def drain(self) -> list[Signal]:
        out, self.signals = self.signals, []
        return out


class _SignalContext:
    """The kernel's context seen through the bot: every order a strategy places becomes a signal."""

    def __init__(self, ctx: StrategyContext, slot: BotSlot, strategy: str):
        self._ctx = ctx
        self._slot = slot
        self._strategy = strategy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def _record(self, action: str, kwargs: dict[str, Any]) -> None:
        ctx = self._ctx
        self._slot.signals.append(Signal(self._strategy, ctx.symbol, action, ctx.last_price, ctx.now,  # type: ignore[attr-defined]
                                         kwargs.get("stop_loss"), kwargs.get("take_profit")))

    def buy(self, quantity: Decimal | None = None, **kwargs: Any) -> str | None:
        self._record("buy", kwargs)
        return self._ctx.buy(quantity, **kwargs)

    def sell(self, quantity: Decimal | None = None, **kwargs: Any) -> str | None:
        self._record("sell", kwargs)
        return self._ctx.sell(quantity, **kwargs)

    def close_position(self, quantity: Decimal | None = None) -> str | None:
        self._record("close", {})
        return self._ctx.close_position(quantity)


@dataclass
class BotState:
    """Whether the account's bot runs, since when, in which mode, and its signal counters.

    ``parameters`` holds, per active strategy, the parameters it was started with (what a
    restart re-creates it from, even if the user changed the strategy's settings since).
    """

    running: bool = False
    paper: bool = True
    started_at: datetime | None = None
    active: list[str] = field(default_factory=list)
    signals_total: dict[str, int] = field(default_factory=dict)
    signals_today: dict[str, int] = field(default_factory=dict)
    today: date | None = None
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def started(self, *, paper: bool, active: dict[str, dict[str, Any]], now: datetime) -> BotState:
        """This bot running ``active`` (name → parameters): a new state, counters kept, ``started_at`` kept if running."""
        started_at = self.started_at if self.running and self.started_at is not None else now
        return BotState(True, paper, started_at, list(active), dict(self.signals_total), dict(self.signals_today),
                        self.today, {name: dict(params) for name, params in active.items()})

    def stopped(self) -> BotState:
        """This bot stopped: a new state, counters kept."""
        return BotState(False, self.paper, None, [], dict(self.signals_total), dict(self.signals_today), self.today)

    def count(self, signal: Signal) -> None:
        """Count ``signal`` (the daily counters reset at 00:00 UTC)."""
        day = signal.at.date()
        if day != self.today:
            self.today, self.signals_today = day, {}
        self.signals_total[signal.strategy] = self.signals_total.get(signal.strategy, 0) + 1
        self.signals_today[signal.strategy] = self.signals_today.get(signal.strategy, 0) + 1

    def today_count(self, strategy: str, now: datetime) -> int:
        return self.signals_today.get(strategy, 0) if self.today == now.date() else 0
