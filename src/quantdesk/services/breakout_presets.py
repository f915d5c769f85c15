"""Breakout presets: the built-in ones, their sections and the rules every section must follow.

A preset is a JSON document of sections (4-breakout-bot-api.md, ``GET /api/presets/{name}``):

- ``description``, ``strategy_type`` (``momentum`` or ``retest``: a label carried to positions)
- ``risk``: ``risk_per_trade`` (fraction of equity lost at the stop, 1 R), ``max_concurrent_positions``
  (the engine's slots), ``daily_loss_limit_r`` (R lost in a UTC day that pauses the engine),
  ``max_consecutive_losses`` (losing trades in a row that pause it)
- ``signal_config``: ``lookback_bars`` (the range), ``volume_multiplier``, ``atr_period``,
  ``max_range_atr`` (range tightness filter, 0 off), ``allow_short``
- ``position_config``: ``atr_stop_multiplier`` (stop distance), ``take_profit_r`` (target in R)
- ``scanner_config``: ``symbols`` (the universe scanned), ``max_candidates`` (markets the engine
  trades), ``timeframe``, ``lookback_bars``, ``min_volume_usd`` / ``min_atr_pct`` / ``max_atr_pct``
  (filters), ``score_weights`` (criterion → weight)

A user's changes are stored per user and section (only what they sent); reads merge them over
the built-in document. Every value is checked by :func:`validate_config`, which raises
InvalidInputError naming the field (``risk.risk_per_trade``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from quantdesk.core.errors import InvalidInputError

SCORE_CRITERIA = ("vol_surge", "volatility", "range_tightness", "level_proximity", "liquidity", "oi_delta")
TIMEFRAMES = ("5m", "15m", "1h")
STRATEGY_TYPES = ("momentum", "retest")

_DEFAULT_SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT",
                    "AVAX/USDT", "LINK/USDT", "DOT/USDT", "MATIC/USDT", "LTC/USDT"]

_BASE: dict[str, Any] = {
    "description": "",
    "strategy_type": "momentum",
    "risk": {"risk_per_trade": 0.006, "max_concurrent_positions": 3, "daily_loss_limit_r": 3.0,
             "max_consecutive_losses": 3},
    "signal_config": {"lookback_bars": 20, "volume_multiplier": 1.5, "atr_period": 14, "max_range_atr": 0.0,
                      "allow_short": True},
    "position_config": {"atr_stop_multiplier": 1.5, "take_profit_r": 2.0},
    "scanner_config": {"symbols": _DEFAULT_SYMBOLS, "max_candidates": 3, "timeframe": "15m", "lookback_bars": 96,
                       "min_volume_usd": 0.0, "min_atr_pct": 0.05, "max_atr_pct": 10.0,
                       "score_weights": {"vol_surge": 0.35, "oi_delta": 0.2, "volatility": 0.15,
                                         "range_tightness": 0.15, "level_proximity": 0.1, "liquidity": 0.05}},
}


def _preset(description: str, strategy_type: str = "momentum", **sections: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(_BASE)
    doc["description"] = description
    doc["strategy_type"] = strategy_type
    for name, values in sections.items():
        doc[name].update(values)
    return doc


BUILTIN: dict[str, dict[str, Any]] = {
    "breakout_v1": _preset("Liquid markets momentum breakout strategy"),
    "breakout_conservative": _preset(
        "Fewer, stronger breakouts: tight ranges, heavy volume, half the risk",
        risk={"risk_per_trade": 0.003, "max_concurrent_positions": 2, "daily_loss_limit_r": 2.0,
              "max_consecutive_losses": 2},
        signal_config={"lookback_bars": 30, "volume_multiplier": 2.0, "max_range_atr": 8.0},
        position_config={"atr_stop_multiplier": 2.0, "take_profit_r": 2.5}),
    "breakout_scalp": _preset(
        "Short ranges on 5m scans, quick targets",
        risk={"risk_per_trade": 0.004, "max_concurrent_positions": 4},
        signal_config={"lookback_bars": 10, "volume_multiplier": 1.2, "atr_period": 10},
        position_config={"atr_stop_multiplier": 1.0, "take_profit_r": 1.5},
        scanner_config={"timeframe": "5m", "lookback_bars": 144, "max_candidates": 4}),
}

# (section, key) → (type, minimum, maximum); None bounds are open
_NUMBERS: dict[tuple[str, str], tuple[type, float | None, float | None]] = {
    ("risk", "risk_per_trade"): (float, 0.0001, 0.05),
    ("risk", "max_concurrent_positions"): (int, 1, 20),
    ("risk", "daily_loss_limit_r"): (float, 0.1, 100),
    ("risk", "max_consecutive_losses"): (int, 1, 100),
    ("signal_config", "lookback_bars"): (int, 2, 500),
    ("signal_config", "volume_multiplier"): (float, 0, 100),
    ("signal_config", "atr_period"): (int, 2, 200),
    ("signal_config", "max_range_atr"): (float, 0, 1000),
    ("position_config", "atr_stop_multiplier"): (float, 0.1, 20),
    ("position_config", "take_profit_r"): (float, 0, 50),
    ("scanner_config", "max_candidates"): (int, 1, 50),
    ("scanner_config", "lookback_bars"): (int, 30, 1000),
    ("scanner_config", "min_volume_usd"): (float, 0, None),
    ("scanner_config", "min_atr_pct"): (float, 0, 100),
    ("scanner_config", "max_atr_pct"): (float, 0, 100),
}
_BOOLS = {("signal_config", "allow_short")}
SECTIONS = ("risk", "signal_config", "position_config", "scanner_config")
_TEXT = ("description", "strategy_type")


def _number(field: str, value: Any, kind: type, low: float | None, high: float | None) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{field} must be a number, got {value!r}", field=field)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidInputError(f"{field} must be a whole number, got {value!r}", field=field)
        value = int(value)
    elif not math.isfinite(value):
        raise InvalidInputError(f"{field} must be a finite number, got {value!r}", field=field)
    if low is not None and value < low:
        raise InvalidInputError(f"{field} {value} is below the minimum {low}", field=field)
    if high is not None and value > high:
        raise InvalidInputError(f"{field} {value} is above the maximum {high}", field=field)
    return kind(value)


def validate_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """Check a partial preset (the body of ``PUT /api/presets/{name}``); return it with numbers typed.

    Unknown sections or keys, wrong types and out-of-range values raise InvalidInputError
    naming the field.
    """
    if not isinstance(update, Mapping):
        raise InvalidInputError("the body must be a JSON object of preset sections", field="body")
    if not update:
        raise InvalidInputError(f"the body is empty; send at least one section: {', '.join((*_TEXT, *SECTIONS))}", field="body")
    out: dict[str, Any] = {}
    for section, value in update.items():
        if section in _TEXT:
            if not isinstance(value, str) or len(value) > 500:
                raise InvalidInputError(f"{section} must be text of at most 500 characters", field=section)
            if section == "strategy_type" and value not in STRATEGY_TYPES:
                raise InvalidInputError(f"strategy_type {value!r} is not one of {list(STRATEGY_TYPES)}",
                                        field=section)
            out[section] = value
            continue
        if section not in SECTIONS:
            raise InvalidInputError(
                f"unknown preset section {section!r}; sections are {', '.join((*_TEXT, *SECTIONS))}", field=section)
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{section} must be an object", field=section)
        out[section] = {key: _value(section, key, item) for key, item in value.items()}
    return out


def _value(section: str, key: str, value: Any) -> Any:
    field = f"{section}.{key}"
    if (section, key) in _NUMBERS:
        return _number(field, value, *_NUMBERS[(section, key)])
    if (section, key) in _BOOLS:
        if not isinstance(value, bool):
            raise InvalidInputError(f"{field} must be true or false, got {value!r}", field=field)
        return value
    if section == "scanner_config" and key == "symbols":
        if (not isinstance(value, list) or not value or len(value) > 100
                or not all(isinstance(s, str) and s.strip() for s in value)):
            raise InvalidInputError(f"{field} must be a list of 1 to 100 symbols", field=field)
        return [s.strip() for s in value]
    if section == "scanner_config" and key == "timeframe":
        if value not in TIMEFRAMES:
            raise InvalidInputError(f"{field} {value!r} is not one of {list(TIMEFRAMES)}", field=field)
        return value
    if section == "scanner_config" and key == "score_weights":
        if not isinstance(value, Mapping) or not value:
            raise InvalidInputError(f"{field} must be an object of criterion → weight", field=field)
        weights = {}
        for name, weight in value.items():
            if name not in SCORE_CRITERIA:
                raise InvalidInputError(f"{field}.{name}: unknown criterion; criteria are {', '.join(SCORE_CRITERIA)}",
                                        field=f"{field}.{name}")
            weights[name] = _number(f"{field}.{name}", weight, float, 0, 100)
        return weights
    known = sorted(k for s, k in (*_NUMBERS, *_BOOLS) if s == section)
    if section == "scanner_config":
        known += ["score_weights", "symbols", "timeframe"]
    raise InvalidInputError(f"unknown key {field!r}; {section} has {', '.join(sorted(known))}", field=field)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s sections applied key by key (``score_weights`` replaced whole)."""
    doc = copy.deepcopy(dict(base))
    for section, value in update.items():
        if isinstance(value, Mapping):
            doc[section] = {**doc.get(section, {}), **copy.deepcopy(dict(value))}
        else:
            doc[section] = value
    return doc


def check_document(doc: Mapping[str, Any]) -> None:
    """Rules across keys of a whole preset: the ATR band of the scanner must not be empty."""
    scanner = doc["scanner_config"]
    if scanner["min_atr_pct"] > scanner["max_atr_pct"]:
        raise InvalidInputError(
            f"scanner_config.min_atr_pct {scanner['min_atr_pct']} exceeds max_atr_pct {scanner['max_atr_pct']}",
            field="scanner_config.min_atr_pct")
    if not any(w > 0 for w in scanner["score_weights"].values()):
        raise InvalidInputError("scanner_config.score_weights needs at least one positive weight",
                                field="scanner_config.score_weights")


def summary(name: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The list view of a preset (``GET /api/presets/``)."""
    return {"name": name, "description": doc["description"], "risk_per_trade": doc["risk"]["risk_per_trade"],
            "max_positions": doc["risk"]["max_concurrent_positions"], "strategy_type": doc["strategy_type"]}


def strategy_parameters(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``breakout_levels`` strategy parameters a preset stands for."""
    sig, pos, risk = doc["signal_config"], doc["position_config"], doc["risk"]
    return {"lookback": sig["lookback_bars"], "volume_period": max(sig["lookback_bars"], 2),
            "volume_multiplier": sig["volume_multiplier"], "atr_period": sig["atr_period"],
            "max_range_atr": sig["max_range_atr"], "allow_short": sig["allow_short"],
            "atr_stop": pos["atr_stop_multiplier"], "take_profit_r": pos["take_profit_r"],
            "risk_per_trade": str(risk["risk_per_trade"])}


__all__ = ["BUILTIN", "SCORE_CRITERIA", "SECTIONS", "check_document", "merge", "strategy_parameters", "summary",
           "validate_update"]
