"""The Clock protocol: the only way engine and services learn the time."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Give the current time as an aware UTC datetime.

    Backtests use a simulated clock moved by the feed; paper and live use the wall clock.
    """

    def now(self) -> datetime: ...
