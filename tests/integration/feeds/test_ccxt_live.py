"""CcxtLiveFeed (ccxt.pro) against fake Binance REST and WebSocket servers speaking the real wire formats."""

import asyncio
from datetime import UTC, datetime

import pytest
from feed_constants import BTC_PERP, BTC_SPOT, NOW

from fakes.binance_ws import FakeBinanceWs
from kit.app import api_for, make_settings
from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.feeds.ccxt_live import CcxtLiveFeed

NOW_MS = int(NOW.timestamp() * 1000)
MINUTE_OPEN_MS = NOW_MS // 60_000 * 60_000
WAIT_S = 10.0  # upper bound for a message to arrive, not a timing assertion


@pytest.fixture
async def fake_ws(fake_binance):
    async with FakeBinanceWs(NOW_MS) as fake:
        fake.attach(fake_binance)
        book = fake.book("BTCUSDT")
        book.bids.update({"70000.0": "1.5", "69999.9": "2.0", "69999.8": "3.0", "69999.7": "1.0",
                          "69999.6": "4.0", "69999.5": "9.0"})
        book.asks.update({"70000.1": "0.5", "70000.2": "1.0", "70000.3": "2.5", "70000.4": "1.0",
                          "70000.5": "3.0", "70000.6": "8.0"})
        yield fake


@pytest.fixture
async def live(fake_binance, fake_ws):
    """A running feed of the BTCUSDT perpetual publishing to a real in-memory bus; stopped afterwards."""
    bus = InMemoryEventBus()
    sub = bus.subscribe("market:*", "book:*", "bars:*", maxsize=10_000, lossless=True)
    feed = CcxtLiveFeed("binance", [BTC_PERP], base_url=fake_binance.url, ws_url=fake_ws.url,
                        rate_limit=False, backoff_s=0.05, max_backoff_s=0.2)
    task = asyncio.create_task(feed.run(bus))
    yield feed, task, sub
    feed.stop()
    await asyncio.wait_for(task, WAIT_S)


async def next_on(sub, prefix: str) -> dict:
    while True:
        topic, message = await sub.get(timeout=WAIT_S)
        if topic.startswith(prefix):
            return {"topic": topic, **message}


async def test_ccxt_live_trade_publishes_market_tick_with_ticker_and_book_fields(live, fake_ws):
    _, _, sub = live
    await fake_ws.wait_subscribed("btcusdt@ticker")
    await fake_ws.wait_subscribed("btcusdt@trade")
    await fake_ws.send_ticker("BTCUSDT", last="70000.0", bid="69999.0", ask="70001.0", open_price="68000.0",
                              quote_volume="123456789.123")
    book = await next_on(sub, "book:")  # the depth snapshot: bid/ask for ticks come from the book top
    assert book["data"]["bids"][0] == [70000.0, 1.5]

    # ticker and trade travel on different sockets: send trades until one carries the ticker's stats
    for trade_id in range(1, 50):
        await fake_ws.send_trade("BTCUSDT", "70000.1", "0.25", trade_id=trade_id, at_ms=NOW_MS + trade_id)
        tick = await next_on(sub, "market:")
        if tick["data"]["volume_24h"] is not None:
            break

    assert tick["topic"] == "market:BTCUSDT"
    assert tick["type"] == "market" and tick["symbol"] == "BTCUSDT"
    assert tick["data"] == {
        "price": 70000.1,
        "bid": 70000.0,
        "ask": 70000.1,
        "size": 0.25,
        "volume_24h": 123456789.12,
        "change_24h": 2.941,  # Binance's "P", percent
        "timestamp": datetime.fromtimestamp((NOW_MS + trade_id) / 1000, UTC)
        .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


async def test_ccxt_live_depth_publishes_top_five_levels_of_the_book(live, fake_ws, fake_binance):
    _, _, sub = live
    snapshot = await next_on(sub, "book:")
    assert snapshot["topic"] == "book:BTCUSDT" and snapshot["symbol"] == "BTCUSDT"
    assert snapshot["data"]["bids"] == [[70000.0, 1.5], [69999.9, 2.0], [69999.8, 3.0], [69999.7, 1.0],
                                        [69999.6, 4.0]]
    assert snapshot["data"]["asks"] == [[70000.1, 0.5], [70000.2, 1.0], [70000.3, 2.5], [70000.4, 1.0],
                                        [70000.5, 3.0]]
    assert fake_binance.count("/fapi/v1/depth") == 1  # ccxt's REST snapshot, from the futures API

    await fake_ws.send_depth("BTCUSDT", bids=[["70000.0", "0"], ["70000.05", "0.7"]], asks=[])
    update = await next_on(sub, "book:")
    assert update["data"]["bids"][:2] == [[70000.05, 0.7], [69999.9, 2.0]]
    assert len(update["data"]["bids"]) == len(update["data"]["asks"]) == 5
    assert update["data"]["timestamp"] == "2025-11-05T12:34:56.000Z"


async def test_ccxt_live_only_closed_klines_become_bars(live, fake_ws):
    _, _, sub = live
    await fake_ws.wait_subscribed("btcusdt@kline_1m")
    t0, t1 = MINUTE_OPEN_MS, MINUTE_OPEN_MS + 60_000
    await fake_ws.send_kline("BTCUSDT", t0, ("70000", "70010", "69990", "70005", "1.5"), closed=False)
    await fake_ws.send_kline("BTCUSDT", t0, ("70000", "70020", "69990", "70015", "2.5"), closed=False)
    await fake_ws.send_kline("BTCUSDT", t0, ("70000", "70030", "69980", "70025", "3.5"), closed=True)

    bar = await next_on(sub, "bars:")  # published on the closed flag, before the next minute's kline
    assert bar == {
        "topic": "bars:BTCUSDT",
        "type": "bar",
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "data": {"timestamp": "2025-11-05T12:34:00.000Z", "open": 70000.0, "high": 70030.0, "low": 69980.0,
                 "close": 70025.0, "volume": 3.5},
    }

    await fake_ws.send_kline("BTCUSDT", t1, ("70025", "70040", "70020", "70030", "0.5"), closed=False)
    await fake_ws.send_kline("BTCUSDT", t1, ("70025", "70050", "70000", "70001", "4.0"), closed=True)
    second = await next_on(sub, "bars:")
    assert second["data"] == {"timestamp": "2025-11-05T12:35:00.000Z", "open": 70025.0, "high": 70050.0,
                              "low": 70000.0, "close": 70001.0, "volume": 4.0}
    # nothing else was published for the open klines
    rest = [sub.get_nowait() for _ in range(200)]
    assert not [m for m in rest if m and m[0].startswith("bars:")]


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "no-close-frame"])
async def test_ccxt_live_survives_dropped_sockets_and_keeps_publishing(live, fake_ws, abrupt):
    feed, task, sub = live
    await fake_ws.wait_subscribed("btcusdt@trade")
    await fake_ws.send_trade("BTCUSDT", "70000.1", "0.1", trade_id=1)
    assert (await next_on(sub, "market:"))["data"]["price"] == 70000.1

    assert await fake_ws.drop(abrupt=abrupt) >= 4  # trades, ticker, depth and kline sockets

    await fake_ws.wait_subscribed("btcusdt@trade", times=2)  # ccxt redialled and subscribed again
    await fake_ws.wait_subscribed("btcusdt@kline_1m", times=2)
    await fake_ws.send_trade("BTCUSDT", "70100.5", "0.2", trade_id=2, at_ms=NOW_MS + 1000)
    tick = await next_on(sub, "market:")
    assert tick["data"]["price"] == 70100.5 and tick["data"]["size"] == 0.2
    await fake_ws.send_kline("BTCUSDT", MINUTE_OPEN_MS, ("1", "2", "0.5", "1.5", "10"), closed=True)
    assert (await next_on(sub, "bars:"))["data"]["close"] == 1.5
    assert not task.done()


async def test_ccxt_live_stop_closes_every_socket_and_returns_the_count(fake_binance, fake_ws):
    bus = InMemoryEventBus()
    sub = bus.subscribe("market:*", maxsize=100, lossless=True)
    feed = CcxtLiveFeed("binance", [BTC_PERP, BTC_SPOT], base_url=fake_binance.url, ws_url=fake_ws.url,
                        rate_limit=False, backoff_s=0.05)
    task = asyncio.create_task(feed.run(bus))
    await fake_ws.wait_subscribed("btcusdt@trade", "usdm")
    await fake_ws.wait_subscribed("btcusdt@trade", "spot")
    await fake_ws.send_trade("BTCUSDT", "70000.1", "0.1", kind="spot")
    spot_tick = await next_on(sub, "market:")
    assert spot_tick["data"]["price"] == 70000.1

    feed.stop()
    published = await asyncio.wait_for(task, WAIT_S)

    assert published >= 1
    await fake_ws.wait_disconnected()  # the exchange closed its sockets


async def test_ccxt_live_stop_then_cancel_like_the_app_lifespan(fake_binance, fake_ws):
    feed = CcxtLiveFeed("binance", [BTC_PERP], base_url=fake_binance.url, ws_url=fake_ws.url, rate_limit=False)
    task = asyncio.create_task(feed.run(InMemoryEventBus()))
    await fake_ws.wait_subscribed("btcusdt@trade")

    feed.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    await fake_ws.wait_disconnected()


async def test_ccxt_live_unreachable_exchange_is_retried_not_raised(fake_binance):
    sleeps: list[float] = []
    retried = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 8:
            retried.set()
        await asyncio.sleep(0)

    fake_binance.fail("/fapi/v1/exchangeInfo", 503, "down", times=None)
    feed = CcxtLiveFeed("binance", [BTC_PERP], base_url=fake_binance.url, ws_url="ws://127.0.0.1:9",
                        rate_limit=False, backoff_s=0.5, max_backoff_s=2.0, sleep=sleep)
    task = asyncio.create_task(feed.run(InMemoryEventBus()))
    await asyncio.wait_for(retried.wait(), WAIT_S)

    assert not task.done()
    assert max(sleeps) <= 2.0 and 1.0 in sleeps  # exponential backoff, capped
    feed.stop()
    assert await asyncio.wait_for(task, WAIT_S) == 0


async def test_app_with_ccxt_provider_runs_the_ccxt_live_feed_on_its_bus(tmp_path, fake_binance, fake_ws):
    settings = make_settings(tmp_path, crypto_provider="ccxt", ccxt_base_url=fake_binance.url,
                             ccxt_ws_url=fake_ws.url)
    async for api in api_for(settings):
        sub = api.app.state.bus.subscribe("market:*", maxsize=100, lossless=True)
        await fake_ws.wait_subscribed("btcusdt@trade")
        await fake_ws.wait_subscribed("ethusdt@trade")  # every perpetual the exchange lists
        await fake_ws.send_trade("ETHUSDT", "3500.25", "1.5")
        tick = await next_on(sub, "market:")
        assert tick["topic"] == "market:ETHUSDT" and tick["data"]["price"] == 3500.25
    await fake_ws.wait_disconnected()  # the lifespan's shutdown stopped the feed and closed the exchange
