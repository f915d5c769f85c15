"""Breakout scanner: score crypto perpetuals on how ready they are to break out of a range.

Per symbol, over the preset's ``scanner_config.lookback_bars`` closed bars of its
``timeframe`` (the market-data layer's bars; the simulated market by default):

- ``vol_surge``: volume of the last hour over the mean hourly volume of the window (3× scores 1)
- ``volatility``: ATR(14) as a percentage of the close, scored inside the preset's band
- ``range_tightness``: the range (high − low of the signal ``lookback_bars``) in ATRs; tighter scores higher
- ``level_proximity``: the close's distance to the nearer level in ATRs; closer scores higher
- ``liquidity``: mean traded value per hour (USD), on a log scale (10⁹ scores 1)
- ``oi_delta``: open interest is not in quantdesk's market data; it scores 0

The score is the weighted mean of the criteria's scores (0–1, weights normalised), rounded
to 4 places. Filters (``liquidity``, ``volatility``, ``volume_surge``) say which preset
thresholds a symbol passes; candidates are sorted by score (then symbol), deterministic for
the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from quantdesk.analytics.indicators import atr
from quantdesk.core.instruments import Instrument
from quantdesk.core.market import Timeframe

ATR_PERIOD = 14


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scanned symbol: its score (0–1), filters passed, metrics and range levels."""

    instrument: Instrument
    score: float
    filters: dict[str, bool]
    metrics: dict[str, float]
    levels: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(self.filters.values())


def _clip(x: float) -> float:
    return 0.0 if not math.isfinite(x) else max(0.0, min(1.0, x))


def score_symbol(instrument: Instrument, frame: Any, config: Mapping[str, Any]) -> Candidate | None:
    """Score one symbol from its bars (a frame with ``high low close volume``); None if too few bars."""
    scanner, signal = config["scanner_config"], config["signal_config"]
    high = frame["high"].to_numpy(dtype=np.float64)
    low = frame["low"].to_numpy(dtype=np.float64)
    close = frame["close"].to_numpy(dtype=np.float64)
    volume = frame["volume"].to_numpy(dtype=np.float64)
    look = int(signal["lookback_bars"])
    if len(close) < max(look, ATR_PERIOD) + 2:
        return None
    last_atr = float(np.asarray(atr(high, low, close, ATR_PERIOD))[-1])
    last = float(close[-1])
    if not math.isfinite(last_atr) or last_atr <= 0 or last <= 0:
        return None
    bars_per_hour = max(1, int(timedelta(hours=1) / Timeframe.parse(scanner["timeframe"]).delta))
    hourly = volume[-(len(volume) // bars_per_hour) * bars_per_hour:].reshape(-1, bars_per_hour).sum(axis=1)
    surge = float(hourly[-1] / hourly.mean()) if hourly.mean() > 0 else 0.0
    range_high, range_low = float(high[-look:].max()), float(low[-look:].min())
    range_atr = (range_high - range_low) / last_atr
    distance_atr = min(range_high - last, last - range_low) / last_atr
    atr_pct = 100.0 * last_atr / last
    turnover_hour = float((close * volume).mean()) * bars_per_hour
    band_low, band_high = float(scanner["min_atr_pct"]), float(scanner["max_atr_pct"])
    mid = (band_low + band_high) / 2 if band_high > band_low else max(band_high, 1e-9)
    scores = {
        "vol_surge": _clip(surge / 3.0),
        "volatility": _clip(1.0 - abs(atr_pct - mid) / max(mid, 1e-9)) if band_low <= atr_pct <= band_high else 0.0,
        "range_tightness": _clip(1.0 - range_atr / 20.0),
        "level_proximity": _clip(1.0 - distance_atr / 5.0),
        "liquidity": _clip(math.log10(turnover_hour) / 9.0) if turnover_hour > 0 else 0.0,
        "oi_delta": 0.0,
    }
    weights = {k: float(w) for k, w in scanner["score_weights"].items() if w > 0}
    total = sum(weights.values())
    score = sum(scores[k] * w for k, w in weights.items()) / total if total else 0.0
    filters = {
        "liquidity": turnover_hour >= float(scanner["min_volume_usd"]),
        "volatility": band_low <= atr_pct <= band_high,
        "volume_surge": surge >= float(signal["volume_multiplier"]),
    }
    metrics = {
        "vol_surge_1h": round(surge, 4),
        f"atr{scanner['timeframe']}_pct": round(last_atr / last, 6),
        "range_atr": round(range_atr, 4),
        "distance_to_level_atr": round(distance_atr, 4),
        "turnover_usd_1h": round(turnover_hour, 2),
        **{f"score_{k}": round(v, 4) for k, v in scores.items()},
    }
    return Candidate(instrument, round(score, 4), filters, metrics, {"high": range_high, "low": range_low})


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: by score, then symbol (so equal scores keep one order)."""
    return sorted(candidates, key=lambda c: (-c.score, c.instrument.symbol))


__all__ = ["Candidate", "rank", "score_symbol"]
