"""The strategy API: a Strategy base with a parameter schema, lifecycle hooks and a registry.

A strategy is a class under ``@register_strategy("name")`` that declares its parameters and
implements hooks the kernel calls:

- ``prepare(data)``: compute array indicators over the bars so far. Must be causal (the
  value at ``i`` uses bars ``≤ i`` only); the kernel calls it once for a backtest and again
  whenever live data grows.
- optionally ``active_bars()``: after ``prepare``, the bars ``on_bar`` may act on (a bool
  array), so a backtest can step over the others.
- ``on_start(ctx)``, ``on_bar(ctx)`` (after bar ``ctx.i`` closed), ``on_fill(ctx, fill)``,
  ``on_book(ctx, book)`` (order-book strategies), ``on_stop(ctx)``.
- optionally ``signals(data)`` returning :class:`Signals` (entry/exit arrays) to run on the
  vectorised fast path; the event path must then produce the same trades.

Strategies reach time, data and orders only through the context (see :class:`StrategyContext`).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.market import BookTop
from quantdesk.core.portfolio import Fill, Position

STRATEGIES_PACKAGE = "quantdesk.strategies"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One strategy parameter: what surfaces validate and display."""

    name: str
    type: type
    default: Any
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` to the declared type and check bounds; raise InvalidInputError naming the field."""
        field = f"parameters.{self.name}"
        try:
            if self.type is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1")
                out = bool(value)
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(value)
                out = int(value)
            elif self.type is Decimal:
                out = Decimal(str(value))
            else:
                out = self.type(value)
        except (TypeError, ValueError, ArithmeticError):
            raise InvalidInputError(
                f"{self.name} must be of type {self.type.__name__}, got {value!r}", field=field
            ) from None
        # NaN passes every bound check and cannot be stored as JSON; an infinity is no setting either
        if (isinstance(out, float) and not math.isfinite(out)) or (isinstance(out, Decimal) and not out.is_finite()):
            raise InvalidInputError(f"{self.name} must be a finite number, got {value!r}", field=field)
        if self.minimum is not None and out < self.minimum:
            raise InvalidInputError(f"{self.name} {out} is below the minimum {self.minimum}", field=field)
        if self.maximum is not None and out > self.maximum:
            raise InvalidInputError(f"{self.name} {out} is above the maximum {self.maximum}", field=field)
        if self.choices is not None and out not in self.choices:
            raise InvalidInputError(f"{self.name} {out!r} is not one of {list(self.choices)}", field=field)
        return out

    def describe(self) -> dict[str, Any]:
        default = str(self.default) if isinstance(self.default, Decimal) else self.default
        return {"name": self.name, "type": self.type.__name__, "default": default,
                "minimum": self.minimum, "maximum": self.maximum,
                "choices": list(self.choices) if self.choices else None, "description": self.description}


class BarData:
    """Bars as float64 arrays (``open high low close volume``) plus int64 UTC open times in ns.

    Floats are for indicators only; the kernel matches orders on exact integer ticks.
    """

    __slots__ = ("open", "high", "low", "close", "volume", "time_ns")

    def __init__(self, open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 volume: np.ndarray, time_ns: np.ndarray):
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.time_ns = time_ns

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True, slots=True)
class Signals:
    """Vectorised long/short entry and exit signals computed at bar close (bool arrays)."""

    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray | None = None
    short_exit: np.ndarray | None = None


class StrategyContext(Protocol):
    """What a strategy may touch. Implemented by the kernel."""

    i: int

    @property
    def now(self) -> datetime: ...
    @property
    def data(self) -> BarData: ...
    @property
    def symbol(self) -> str: ...
    @property
    def position(self) -> Position | None: ...
    @property
    def position_quantity(self) -> Decimal: ...
    def equity(self) -> Decimal: ...
    def buy(self, quantity: Decimal | None = None, **kwargs: Any) -> str | None: ...
    def sell(self, quantity: Decimal | None = None, **kwargs: Any) -> str | None: ...
    def close_position(self, quantity: Decimal | None = None) -> str | None: ...
    def cancel(self, order_id: str) -> None: ...
    def size_for_risk(self, entry_price: Decimal, stop_price: Decimal) -> Decimal: ...
    def round_price(self, price: float | Decimal) -> Decimal: ...


class Strategy:
    """Base class. Subclasses declare ``parameters`` and override the hooks they need."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "technical"
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Parameter, ...]] = ()

    def __init__(self, **params: Any):
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidInputError(
                f"unknown parameter(s) {', '.join(unknown)} for strategy {self.name!r}; "
                f"known: {', '.join(known) or 'none'}",
                field=f"parameters.{unknown[0]}",
            )
        self.params: dict[str, Any] = {}
        for p in self.parameters:
            self.params[p.name] = p.coerce(params[p.name]) if p.name in params else p.default
        self.validate()

    def validate(self) -> None:
        """Check relations between parameters (override); raise InvalidInputError."""

    def prepare(self, data: BarData) -> None:
        """Compute causal array indicators over ``data``."""

    def signals(self, data: BarData) -> Signals | None:
        """Vectorised signals for the fast path, or None if the strategy has none."""
        return None

    def active_bars(self) -> np.ndarray | None:
        """The bars ``on_bar`` may act on, as a bool array over the data last given to ``prepare``.

        None (the default) means every bar. A backtest may skip ``on_bar`` on the other bars
        (and skip them entirely while no order is working), so mark a bar inactive only when
        ``on_bar`` does nothing there.
        """
        return None

    def on_start(self, ctx: StrategyContext) -> None: ...

    def on_bar(self, ctx: StrategyContext) -> None: ...

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None: ...

    def on_book(self, ctx: StrategyContext, book: BookTop) -> None: ...

    def on_stop(self, ctx: StrategyContext) -> None: ...

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return {"name": cls.name, "type": cls.kind, "description": cls.description,
                "parameters": [p.describe() for p in cls.parameters],
                "defaults": {p.name: (str(p.default) if isinstance(p.default, Decimal) else p.default)
                             for p in cls.parameters}}


_REGISTRY: dict[str, type[Strategy]] = {}
_DISCOVERED: set[str] = set()


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register a Strategy subclass under ``name`` (lowercase, unique)."""
    if not name or name != name.strip().lower():
        raise InvalidInputError(f"strategy name {name!r} must be non-empty lowercase", field="name")

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"@register_strategy({name!r}) needs a Strategy subclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise InvalidInputError(f"strategy {name!r} is already registered by {existing.__qualname__}",
                                    field="name")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def discover_strategies(user_dir: str | Path | None = None) -> dict[str, type[Strategy]]:
    """Import the built-in strategies package and every ``*.py`` in ``user_dir``; return the registry.

    User modules are imported under ``quantdesk_user_strategies.<stem>``. Importing runs their
    code: only point this at a folder you trust (hosted user code belongs in the sandbox).
    """
    if STRATEGIES_PACKAGE not in _DISCOVERED:
        package = importlib.import_module(STRATEGIES_PACKAGE)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{STRATEGIES_PACKAGE}.{info.name}")
        _DISCOVERED.add(STRATEGIES_PACKAGE)
    if user_dir is not None:
        folder = Path(user_dir)
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module_name = f"quantdesk_user_strategies.{path.stem}"
            key = str(path.resolve())
            if key in _DISCOVERED:
                continue
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            _DISCOVERED.add(key)
    return dict(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    """Return the registered class for ``name`` (discovering built-ins first) or raise NotFoundError."""
    if name not in _REGISTRY:
        discover_strategies()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NotFoundError("strategy", name, code="STRATEGY_NOT_FOUND") from None


def create_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """Build a registered strategy with validated parameters."""
    return get_strategy(name)(**(params or {}))


def list_strategies() -> list[dict[str, Any]]:
    """Schemas of every registered strategy, sorted by name."""
    discover_strategies()
    return [cls.schema() for _, cls in sorted(_REGISTRY.items())]


def signal_step(ctx: StrategyContext, long_entry: bool, long_exit: bool, short_entry: bool, short_exit: bool,
                fraction: Decimal | None = None) -> None:
    """Act on one bar's signals with the rule the fast path compiles (see ``engine.fastpath``).

    flat: long_entry → buy, else short_entry → sell; long: short_entry → flip short, else
    long_exit → close; short: long_entry → flip long, else short_exit → close. Orders are
    market orders sized on ``fraction`` of available margin (all of it by default).
    """
    qty = ctx.position_quantity
    if not qty:
        if long_entry:
            ctx.buy(fraction=fraction)
        elif short_entry:
            ctx.sell(fraction=fraction)
    elif qty > 0:
        if short_entry:
            ctx.sell(fraction=fraction)
        elif long_exit:
            ctx.close_position()
    else:
        if long_entry:
            ctx.buy(fraction=fraction)
        elif short_exit:
            ctx.close_position()
