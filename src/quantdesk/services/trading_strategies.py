"""A user's strategy settings for the bot: which registered strategies are enabled, with what parameters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantdesk.core.clock import Clock
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.portfolio import RoundTrip
from quantdesk.engine.strategy import Strategy, create_strategy, discover_strategies, get_strategy
from quantdesk.services.pnl import trade_stats
from quantdesk.services.trading_bot import BotState


@dataclass(frozen=True, slots=True)
class StrategyView:
    """A strategy as a user sees it: settings plus performance (accuracy and avg_return in percent)."""

    name: str
    kind: str
    enabled: bool
    parameters: dict[str, Any]
    total_signals: int
    accuracy: Decimal | None
    avg_return: Decimal | None
    updated_at: datetime | None


@dataclass
class _Setting:
    enabled: bool
    params: dict[str, Any]
    updated_at: datetime | None = None


class StrategyBook:
    """One user's settings over the strategy registry (defaults until changed)."""

    def __init__(self, enabled_by_default: Iterable[str], clock: Clock):
        self._defaults = set(enabled_by_default)
        self._clock = clock
        self._settings: dict[str, _Setting] = {}

    @staticmethod
    def names() -> list[str]:
        """Every registered strategy, by name."""
        return sorted(discover_strategies())

    def _cls(self, name: str) -> type[Strategy]:
        try:
            return get_strategy(name)
        except NotFoundError:
            raise NotFoundError("strategy", name,
                                message=f"strategy {name!r} not found; known: {', '.join(self.names())}") from None

    def _setting(self, name: str) -> _Setting:
        setting = self._settings.get(name)
        if setting is None:
            cls = self._cls(name)
            setting = _Setting(name in self._defaults, {p.name: p.default for p in cls.parameters})
            self._settings[name] = setting
        return setting

    def enabled(self, name: str) -> bool:
        return self._setting(name).enabled

    def parameters(self, name: str) -> dict[str, Any]:
        return dict(self._setting(name).params)

    def update(self, name: str, *, enabled: bool | None = None, parameters: dict[str, Any] | None = None) -> None:
        """Change a strategy's settings; parameters are merged and validated against its schema.

        Raises NotFoundError for an unknown strategy, InvalidInputError naming ``parameters.<name>``.
        """
        setting = self._setting(name)
        params = setting.params
        if parameters:
            params = create_strategy(name, {**setting.params, **parameters}).params
        setting.params = dict(params)
        if enabled is not None:
            setting.enabled = enabled
        setting.updated_at = self._clock.now()

    def activate(self, names: list[str] | None) -> list[str]:
        """The strategies a bot start runs: ``names`` (now enabled) or every enabled one."""
        if names is None:
            return [n for n in self.names() if self.enabled(n)]
        for name in names:
            if name not in self.names():
                raise InvalidInputError(f"strategy {name!r} is not registered; known: {', '.join(self.names())}",
                                        field="strategies")
        for name in names:
            setting = self._setting(name)
            setting.enabled = True
            setting.updated_at = self._clock.now()
        return list(dict.fromkeys(names))

    def create(self, name: str) -> Strategy:
        """A fresh instance of ``name`` with the user's parameters."""
        return create_strategy(name, self.parameters(name))

    def views(self, trades: Iterable[RoundTrip], bot: BotState, only: str | None = None) -> list[StrategyView]:
        """Settings and performance (trades booked under each strategy, bot signals) per strategy."""
        names = [only] if only else self.names()
        rows = list(trades)
        out = []
        for name in names:
            cls = self._cls(name)
            setting = self._setting(name)
            stats = trade_stats(t for t in rows if t.strategy == name)
            out.append(StrategyView(name, cls.kind, setting.enabled, dict(setting.params),
                                    bot.signals_total.get(name, 0), stats.win_rate, stats.avg_return_pct,
                                    setting.updated_at))
        return out
