"""Deterministic synthetic candles: the same (symbol, open time, length) always gives the same bar."""

from __future__ import annotations

import math
import zlib


def candle(symbol: str, open_ms: int, length_ms: int) -> tuple[float, float, float, float, float]:
    """(open, high, low, close, volume) of the bar of ``symbol`` opening at ``open_ms`` (epoch ms)."""
    base = 100.0 + zlib.crc32(symbol.encode()) % 50_000

    def price(t_ms: int) -> float:
        days = t_ms / 86_400_000
        return base * (
            1 + 0.1 * math.sin(2 * math.pi * days / 17) + 0.02 * math.sin(2 * math.pi * days * 24 / 7)
        )

    o = round(price(open_ms), 2)
    c = round(price(open_ms + length_ms), 2)
    h = round(max(o, c) * 1.001, 2)
    lo = round(min(o, c) * 0.999, 2)
    v = round(10 + (open_ms // max(length_ms, 1)) % 97 + 0.5, 3)
    return o, h, lo, c, v
