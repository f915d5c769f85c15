import asyncio
from datetime import UTC, datetime, timedelta

import pandas as pd

from quantdesk.adapters.feeds.live_sim import LiveSimFeed
from quantdesk.core.market import Timeframe


class RecordingBus:
    def __init__(self):
        self.messages: list[tuple[str, dict]] = []

    async def publish(self, topic: str, message: dict) -> None:
        self.messages.append((topic, message))


def test_live_feed_bars_equal_sim_history_and_ticks_stay_in_bar(catalog, sim):
    btc = catalog.resolve("BTCUSDT")
    start = datetime(2025, 10, 30, 8, 0, tzinfo=UTC)
    feed = LiveSimFeed(sim, [btc], speed=None, ticks_per_bar=8, start=start)
    bus = RecordingBus()
    count = asyncio.run(feed.run(bus, max_minutes=5))
    assert count == len(bus.messages) == 5 * (8 * 2 + 1)
    bars = [m["data"] for t, m in bus.messages if t == "bars:BTCUSDT"]
    history = sim.path(btc, Timeframe.M1, start, start + timedelta(minutes=5))
    assert [b["close"] for b in bars] == history["close"].tolist()
    assert [b["high"] for b in bars] == history["high"].tolist()
    assert [pd.Timestamp(b["timestamp"]) for b in bars] == list(history.index)
    ticks = [m["data"] for t, m in bus.messages if t == "market:BTCUSDT"]
    first_minute = ticks[:8]
    assert max(t["price"] for t in first_minute) == bars[0]["high"]
    assert min(t["price"] for t in first_minute) == bars[0]["low"]
    assert first_minute[0]["price"] == bars[0]["open"] and first_minute[-1]["price"] == bars[0]["close"]
    assert all(t["bid"] < t["ask"] for t in ticks)


def test_live_feed_book_has_five_sorted_levels(catalog, sim):
    eth = catalog.resolve("ETHUSDT")
    feed = LiveSimFeed(sim, [eth], speed=None, start=datetime(2025, 10, 30, tzinfo=UTC))
    books = []

    async def take():
        async for topic, message in feed.events(max_minutes=1):
            if topic == "book:ETHUSDT":
                books.append(message["data"])

    asyncio.run(take())
    book = books[0]
    assert len(book["bids"]) == len(book["asks"]) == 5
    bid_prices = [p for p, _ in book["bids"]]
    ask_prices = [p for p, _ in book["asks"]]
    assert bid_prices == sorted(bid_prices, reverse=True) and ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert all(size > 0 for _, size in book["bids"] + book["asks"])


def test_live_feed_is_deterministic_and_skips_nse_night(catalog, sim):
    rel = catalog.resolve("RELIANCE")
    start = datetime(2025, 10, 30, 9, 58, tzinfo=UTC)  # two minutes before the NSE close

    async def collect():
        feed = LiveSimFeed(sim, [rel], speed=None, ticks_per_bar=4, start=start)
        return [m async for m in feed.events(max_minutes=4)]

    first, second = asyncio.run(collect()), asyncio.run(collect())
    assert first == second
    bar_times = [pd.Timestamp(m["data"]["timestamp"]) for t, m in first if t == "bars:RELIANCE"]
    assert bar_times[:2] == [
        pd.Timestamp("2025-10-30 09:58", tz="UTC"),
        pd.Timestamp("2025-10-30 09:59", tz="UTC"),
    ]
    assert bar_times[2] == pd.Timestamp("2025-10-31 03:45", tz="UTC")  # next session's first minute


def test_live_feed_paces_with_speed_factor(catalog, sim):
    btc = catalog.resolve("BTCUSDT")
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    feed = LiveSimFeed(
        sim, [btc], speed=60.0, ticks_per_bar=5, start=datetime(2025, 10, 30, tzinfo=UTC), sleep=fake_sleep
    )
    asyncio.run(feed.run(RecordingBus(), max_minutes=2))
    assert slept and max(slept) <= 2 * 60 / 60.0 + 0.5  # two simulated minutes at 60x is about two seconds
