"""Bars frame → JSON records, shared by the surfaces that return OHLCV."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def bar_records(frame: pd.DataFrame, *, date_only: bool = False) -> list[dict[str, Any]]:
    """One dict per bar: ``timestamp`` (ISO UTC with Z, or ``YYYY-MM-DD`` for daily bars) and OHLCV numbers."""
    if frame.empty:
        return []
    index = frame.index
    if date_only:
        stamps = index.strftime("%Y-%m-%d").tolist()
    else:
        stamps = index.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    cols = [np.asarray(frame[c], dtype="float64").tolist() for c in ("open", "high", "low", "close", "volume")]
    return [
        {"timestamp": t, "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for t, o, h, lo, c, v in zip(stamps, *cols, strict=True)
    ]
