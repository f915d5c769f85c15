"""Fixed-window request counters in Redis, shared by every server worker."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from quantdesk.adapters.limits.memory import Window


class RedisRateCounter:
    def __init__(self, url: str, window_s: int = 60, prefix: str = "qd:rl:", clock=time.time):
        self.window_s = window_s
        self._redis = aioredis.from_url(url)
        self._prefix = prefix
        self._clock = clock

    async def hit(self, key: str) -> Window:
        now = int(self._clock())
        start = now - now % self.window_s
        rkey = f"{self._prefix}{key}:{start}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(rkey)
        pipe.expire(rkey, self.window_s + 5)
        count, _ = await pipe.execute()
        return Window(int(count), start + self.window_s)

    async def close(self) -> None:
        await self._redis.aclose()
