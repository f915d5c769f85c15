"""The event bus: same interface in process and over Redis; several workers see the same events."""

from __future__ import annotations

import asyncio

import pytest

from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.bus.redis import RedisEventBus


@pytest.fixture(params=["memory", "redis"])
async def bus(request):
    if request.param == "memory":
        b = InMemoryEventBus()
    else:
        b = RedisEventBus(request.getfixturevalue("redis_url"), prefix="qdtest:")
    await b.start()
    yield b
    await b.close()


async def test_subscribers_get_matching_topics_in_order(bus):
    orders = bus.subscribe("orders", lossless=True)
    market = bus.subscribe("market:*")
    await bus.publish("orders", {"n": 1})
    await bus.publish("market:BTCUSDT", {"price": 1})
    await bus.publish("orders", {"n": 2})
    await bus.publish("positions", {"ignored": True})
    assert await orders.get(timeout=2) == ("orders", {"n": 1})
    assert await orders.get(timeout=2) == ("orders", {"n": 2})
    assert await market.get(timeout=2) == ("market:BTCUSDT", {"price": 1})
    await asyncio.sleep(0.05)
    assert orders.get_nowait() is None and market.get_nowait() is None


async def test_slow_subscriber_drops_oldest_and_never_blocks_publisher(bus):
    slow = bus.subscribe("market:*", maxsize=3)
    fast = bus.subscribe("market:*", lossless=True)
    for i in range(10):
        await bus.publish("market:ETHUSDT", {"i": i})
    got_fast = [(await fast.get(timeout=2))[1]["i"] for _ in range(10)]
    assert got_fast == list(range(10))
    got_slow = []
    while (m := slow.get_nowait()) is not None:
        got_slow.append(m[1]["i"])
    assert got_slow == [7, 8, 9] and slow.dropped == 7


async def test_closed_subscription_receives_nothing(bus):
    sub = bus.subscribe("orders")
    sub.close()
    await bus.publish("orders", {"n": 1})
    await asyncio.sleep(0.05)
    assert sub.get_nowait() is None


async def test_two_redis_buses_share_events(redis_url):
    one, two = RedisEventBus(redis_url, prefix="qdshare:"), RedisEventBus(redis_url, prefix="qdshare:")
    await one.start()
    await two.start()
    try:
        sub = two.subscribe("orders", lossless=True)
        await one.publish("orders", {"order_id": "ord_1", "price": "50000.5"})
        assert await sub.get(timeout=3) == ("orders", {"order_id": "ord_1", "price": "50000.5"})
    finally:
        await one.close()
        await two.close()
