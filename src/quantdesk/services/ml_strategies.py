"""Each user's configured strategies (the ML backend's strategy registry) over the core strategy registry.

A configured strategy is an instance of a registered strategy type (``@register_strategy``):
a name, the type, ``params`` (``symbols``, ``timeframe`` and the type's own parameters, typed
and checked by the type's schema, defaults filled in) and whether it is active. Symbols are
resolved in the instrument catalogue and kept in the ML spelling (``BTC_USDT``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from quantdesk.core.clock import Clock
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.instruments import Instrument
from quantdesk.core.market import Timeframe
from quantdesk.engine.clocks import WallClock
from quantdesk.engine.strategy import Strategy, create_strategy, discover_strategies

log = logging.getLogger(__name__)

COMMON_PARAMS = ("symbols", "timeframe")
DEFAULT_TIMEFRAME = Timeframe.H1
MAX_NAME_LENGTH = 100
MAX_SYMBOLS = 100
_TYPE_NAMES = {int: "int", float: "float", Decimal: "float", bool: "bool", str: "string"}


@dataclass(frozen=True, slots=True)
class ConfiguredStrategy:
    """A user's strategy: ``params`` holds symbols, timeframe and the type's parameters (Decimals exact)."""

    id: str
    user_id: int
    name: str
    type: str
    params: dict[str, Any]
    active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def status(self) -> str:
        return "active" if self.active else "inactive"


class ConfiguredStrategyStore(Protocol):
    """Keeps configured strategies; every lookup is by owner."""

    def add(self, strategy: ConfiguredStrategy) -> None:
        """Insert a new strategy."""
        ...

    def get(self, user_id: int, strategy_id: str) -> ConfiguredStrategy | None:
        """The user's strategy, or None (missing or another user's)."""
        ...

    def list_all(self, user_id: int) -> list[ConfiguredStrategy]:
        """The user's strategies, oldest first."""
        ...

    def replace(self, strategy: ConfiguredStrategy) -> bool:
        """Overwrite the strategy with that id owned by ``strategy.user_id``; False if there is none."""
        ...

    def delete(self, user_id: int, strategy_id: str) -> bool:
        """Remove the user's strategy; False if there is none."""
        ...


class SymbolResolver(Protocol):
    def resolve(self, symbol: str) -> Instrument: ...


class ConfiguredStrategies:
    """Create, list, change, delete, activate and deactivate a user's strategies."""

    def __init__(self, store: ConfiguredStrategyStore, symbols: SymbolResolver, *, clock: Clock | None = None):
        self._store = store
        self._symbols = symbols
        self._clock: Clock = clock or WallClock()

    @staticmethod
    def available() -> list[dict[str, Any]]:
        """Every registered strategy type with its parameter schema, by name."""
        return [_describe(cls) for _, cls in sorted(discover_strategies().items())]

    def list_strategies(self, user_id: int) -> list[ConfiguredStrategy]:
        """The user's strategies, oldest first."""
        return [self._typed(s) for s in self._store.list_all(user_id)]

    def get(self, user_id: int, strategy_id: str) -> ConfiguredStrategy:
        """The user's strategy; NotFoundError for a missing id or another user's."""
        found = self._store.get(user_id, strategy_id) if _uuid(strategy_id) else None
        if found is None:
            raise NotFoundError("strategy", strategy_id, message="Strategy not found")
        return self._typed(found)

    def create(self, user_id: int, *, name: str, strategy_type: str, params: Mapping[str, Any] | None = None,
               active: bool = False) -> ConfiguredStrategy:
        """Validate and keep a new (inactive unless ``active``) strategy; InvalidInputError names the field."""
        type_name = _type(strategy_type)
        now = self._clock.now()
        strategy = ConfiguredStrategy(str(uuid.uuid4()), user_id, _name(name), type_name,
                                      self._params(type_name, _given(params)), active, now, now)
        if active:
            self._check_runnable(strategy)
        self._store.add(strategy)
        return strategy

    def update(self, user_id: int, strategy_id: str, *, name: str | None = None, strategy_type: str | None = None,
               params: Mapping[str, Any] | None = None, active: bool | None = None) -> ConfiguredStrategy:
        """Change what is given; ``params`` merge into the current ones (a null value restores the default).

        A new type keeps only ``symbols`` and ``timeframe`` of the old parameters.
        """
        current = self.get(user_id, strategy_id)
        type_name = _type(strategy_type) if strategy_type is not None else current.type
        base = dict(current.params) if type_name == current.type else {
            k: v for k, v in current.params.items() if k in COMMON_PARAMS}
        if params is not None and not isinstance(params, Mapping):
            raise InvalidInputError(f"params must be an object, got {params!r}", field="params")
        base.update(params or {})
        updated = replace(
            current,
            name=_name(name) if name is not None else current.name,
            type=type_name,
            params=self._params(type_name, _given(base)),
            active=current.active if active is None else active,
            updated_at=self._clock.now(),
        )
        if updated.active:
            self._check_runnable(updated)
        return self._save(updated)

    def delete(self, user_id: int, strategy_id: str) -> ConfiguredStrategy:
        """Remove the user's strategy and give back what it was."""
        strategy = self.get(user_id, strategy_id)
        if not self._store.delete(user_id, strategy.id):
            raise NotFoundError("strategy", strategy_id, message="Strategy not found")
        return strategy

    def activate(self, user_id: int, strategy_id: str) -> ConfiguredStrategy:
        """Mark the strategy active (it needs at least one symbol)."""
        current = self.get(user_id, strategy_id)
        self._check_runnable(current)
        return self._save(replace(current, active=True, updated_at=self._clock.now()))

    def deactivate(self, user_id: int, strategy_id: str) -> ConfiguredStrategy:
        """Mark the strategy inactive."""
        current = self.get(user_id, strategy_id)
        return self._save(replace(current, active=False, updated_at=self._clock.now()))

    def _save(self, strategy: ConfiguredStrategy) -> ConfiguredStrategy:
        if not self._store.replace(strategy):
            raise NotFoundError("strategy", strategy.id, message="Strategy not found")
        return strategy

    @staticmethod
    def _check_runnable(strategy: ConfiguredStrategy) -> None:
        if not strategy.params.get("symbols"):
            raise InvalidInputError("an active strategy needs at least one symbol in params.symbols",
                                    field="params.symbols")

    def _params(self, type_name: str, params: dict[str, Any]) -> dict[str, Any]:
        symbols = self._symbol_list(params.pop("symbols", []))
        timeframe = Timeframe.parse(str(params.pop("timeframe", DEFAULT_TIMEFRAME)), field="params.timeframe")
        try:
            own = create_strategy(type_name, params).params
        except InvalidInputError as e:
            raise _renamed(e) from None
        return {"symbols": symbols, "timeframe": timeframe.value, **own}

    def _symbol_list(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise InvalidInputError(f"params.symbols must be a list of symbols, got {value!r}", field="params.symbols")
        if len(value) > MAX_SYMBOLS:
            raise InvalidInputError(f"params.symbols has {len(value)} symbols; at most {MAX_SYMBOLS} are allowed",
                                    field="params.symbols")
        out: list[str] = []
        for i, raw in enumerate(value):
            field = f"params.symbols.{i}"
            if not isinstance(raw, str):
                raise InvalidInputError(f"{field} must be a symbol such as BTC_USDT, got {raw!r}", field=field)
            try:
                instrument = self._symbols.resolve(raw)
            except (InvalidInputError, NotFoundError):
                raise InvalidInputError(f"{field}: symbol {raw!r} is not a known instrument (e.g. BTC_USDT)",
                                        field=field) from None
            spelled = instrument.id.spell("underscore")
            if spelled not in out:
                out.append(spelled)
        return out

    @staticmethod
    def _typed(strategy: ConfiguredStrategy) -> ConfiguredStrategy:
        # stored parameters come back as JSON (Decimals as text): type them by the schema again
        own = {k: v for k, v in strategy.params.items() if k not in COMMON_PARAMS}
        try:
            typed = create_strategy(strategy.type, own).params
        except (InvalidInputError, NotFoundError) as e:
            log.warning("stored parameters of strategy %s (%s) no longer validate (%s); shown as stored",
                        strategy.id, strategy.type, e)
            return strategy
        common = {k: strategy.params[k] for k in COMMON_PARAMS if k in strategy.params}
        return replace(strategy, params={**common, **typed})


def _uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(str(value))) == value
    except ValueError:
        return False


def _name(value: str) -> str:
    name = str(value).strip()
    if not name:
        raise InvalidInputError("name must not be empty", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
                                field="name")
    return name


def _squash(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _type(value: str) -> str:
    """The registered name ``value`` spells (``sma_cross``, ``SmaCross`` and ``SMA-Cross`` are one type)."""
    registry = discover_strategies()
    text = str(value).strip()
    if text in registry:
        return text
    matches = [name for name in registry if _squash(name) == _squash(text)]
    if len(matches) == 1:
        return matches[0]
    raise InvalidInputError(f"type {value!r} is not a registered strategy; known: {', '.join(sorted(registry))}",
                            field="type")


def _given(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidInputError(f"params must be an object, got {params!r}", field="params")
    # a null value means "back to the default"
    return {str(k): v for k, v in params.items() if v is not None}


def _renamed(err: InvalidInputError) -> InvalidInputError:
    # the engine names a strategy parameter "parameters.<name>"; this surface's field is "params"
    field = err.field
    if field and field.startswith("parameters."):
        field = "params." + field.removeprefix("parameters.")
    return InvalidInputError(err.message, field=field or "params", code=err.code)


def _describe(cls: type[Strategy]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for p in cls.parameters:
        spec: dict[str, Any] = {"type": _TYPE_NAMES.get(p.type, p.type.__name__), "required": p.default is None,
                                "default": p.default, "description": p.description}
        if p.minimum is not None:
            spec["minimum"] = p.minimum
        if p.maximum is not None:
            spec["maximum"] = p.maximum
        if p.choices:
            spec["choices"] = list(p.choices)
        parameters[p.name] = spec
    return {"name": cls.name, "description": cls.description, "kind": cls.kind, "parameters": parameters}
