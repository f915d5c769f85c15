"""In-process publish/subscribe by topic, with bounded per-subscriber queues."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator
from typing import Any

Message = dict[str, Any]


class Subscription:
    """One subscriber's queue. ``lossless`` queues never drop; others drop their oldest when full."""

    def __init__(self, bus: InMemoryEventBus, patterns: tuple[str, ...], maxsize: int, lossless: bool):
        self._bus = bus
        self.patterns = patterns
        self._queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue(0 if lossless else maxsize)
        self.lossless = lossless
        self.dropped = 0
        self.closed = False

    def matches(self, topic: str) -> bool:
        return any(p == topic or fnmatch.fnmatchcase(topic, p) for p in self.patterns)

    def offer(self, topic: str, message: Message) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait((topic, message))
        except asyncio.QueueFull:
            self._queue.get_nowait()  # drop the oldest: a slow reader never stalls the publisher
            self.dropped += 1
            self._queue.put_nowait((topic, message))

    async def get(self, timeout: float | None = None) -> tuple[str, Message]:
        if timeout is None:
            return await self._queue.get()
        return await asyncio.wait_for(self._queue.get(), timeout)

    def get_nowait(self) -> tuple[str, Message] | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)

    def __aiter__(self) -> AsyncIterator[tuple[str, Message]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[tuple[str, Message]]:
        while not self.closed:
            yield await self._queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InMemoryEventBus:
    """Topic pub/sub inside one process. Topics are strings (``orders``, ``market:BTCUSDT``);
    subscriptions take exact topics or shell-style patterns (``market:*``)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sub in list(self._subs):
            sub.close()

    def subscribe(self, *patterns: str, maxsize: int = 1000, lossless: bool = False) -> Subscription:
        sub = Subscription(self, tuple(patterns), maxsize, lossless)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def deliver(self, topic: str, message: Message) -> None:
        for sub in list(self._subs):
            if sub.matches(topic):
                sub.offer(topic, message)

    async def publish(self, topic: str, message: Message) -> None:
        self.deliver(topic, message)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
