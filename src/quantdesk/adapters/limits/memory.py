"""Fixed-window request counters kept in this process."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    count: int
    reset_at_s: int  # epoch seconds when the window ends


class MemoryRateCounter:
    """Counts hits per (key, window); windows are aligned to ``window_s`` boundaries."""

    def __init__(self, window_s: int = 60, clock=time.time):
        self.window_s = window_s
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str) -> Window:
        now = int(self._clock())
        start = now - now % self.window_s
        reset = start + self.window_s
        stored = self._counts.get(key)
        count = stored[1] + 1 if stored and stored[0] == start else 1
        self._counts[key] = (start, count)
        if len(self._counts) > 100_000:  # forget stale windows
            self._counts = {k: v for k, v in self._counts.items() if v[0] == start}
        return Window(count, reset)

    async def close(self) -> None:
        return None
