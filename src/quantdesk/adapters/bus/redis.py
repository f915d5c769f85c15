"""Redis-backed event bus: publishes through Redis so every server worker sees every event.

One pattern subscription per process (``qd:*``) feeds the local in-memory dispatcher, so a
thousand WebSocket clients cost one Redis connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis

from quantdesk.adapters.bus.memory import InMemoryEventBus, Message

log = logging.getLogger(__name__)
PREFIX = "qd:"


class RedisEventBus(InMemoryEventBus):
    def __init__(self, url: str, prefix: str = PREFIX):
        super().__init__()
        self._url = url
        self._prefix = prefix
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url)
        await self._redis.ping()
        self._task = asyncio.create_task(self._listen(), name="redis-bus-listener")
        await asyncio.wait_for(self._ready.wait(), 5)

    async def _listen(self) -> None:
        if self._redis is None:
            raise RuntimeError("RedisEventBus.start() was not awaited")
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.psubscribe(self._prefix + "*")
                self._ready.set()
                async for raw in pubsub.listen():
                    if raw.get("type") != "pmessage":
                        continue
                    channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else raw["channel"]
                    self.deliver(channel[len(self._prefix):], orjson.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # the listener must survive a Redis restart
                log.exception("redis bus listener failed; reconnecting in 1 s")
                await asyncio.sleep(1)

    async def publish(self, topic: str, message: Message) -> None:
        if self._redis is None:
            raise RuntimeError("RedisEventBus.start() was not awaited")
        await self._redis.publish(self._prefix + topic, orjson.dumps(message, default=str))

    async def close(self) -> None:
        await super().close()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._redis is not None:
            await self._redis.aclose()
