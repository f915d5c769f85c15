"""A user's strategy settings for the bot: which registered strategies are enabled, with what parameters."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
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
from quantdesk.services.trading_state import StrategySetting

log = logging.getLogger(__name__)


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

    def copy(self) -> StrategyBook:
        """An independent copy (change it, persist it, then swap it in: a failed save leaves no trace)."""
        book = StrategyBook(self._defaults, self._clock)
        book._settings = {n: _Setting(s.enabled, dict(s.params), s.updated_at) for n, s in self._settings.items()}
        return book

    def saved(self) -> tuple[StrategySetting, ...]:
        """The settings the user changed (the others are the registry's defaults), by name."""
        return tuple(StrategySetting(name, s.enabled, dict(s.params), s.updated_at)
                     for name, s in sorted(self._settings.items()) if s.updated_at is not None)

    def restore(self, settings: Iterable[StrategySetting]) -> None:
        """Take back saved settings; a strategy no longer registered is skipped, bad parameters revert to defaults."""
        for saved in settings:
            if saved.name not in discover_strategies():
                log.warning("strategy %r of a saved bot is no longer registered; its settings are dropped", saved.name)
                continue
            params = restore_parameters(saved.name, saved.parameters)
            setting = self._setting(saved.name)
            if params is not None:
                setting.params = params
            setting.enabled, setting.updated_at = saved.enabled, saved.updated_at

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


def restore_parameters(name: str, stored: Mapping[str, Any]) -> dict[str, Any] | None:
    """Saved parameters of strategy ``name`` typed and checked by its schema again; None if they no longer fit.

    Parameters the schema dropped since they were saved are ignored; a value the schema now
    refuses makes the whole set fall back (None), with a warning naming the field.
    """
    cls = get_strategy(name)
    known = {p.name for p in cls.parameters}
    try:
        return dict(create_strategy(name, {k: v for k, v in stored.items() if k in known}).params)
    except InvalidInputError as e:
        log.warning("saved parameters of strategy %r no longer validate (%s); using its defaults", name, e)
        return None
