"""CcxtFeed against a fake Binance REST server speaking the real wire format."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from feed_constants import BTC_PERP, BTC_SPOT, DOGE_SPOT, NOW, RELIANCE

from fakes.candles import candle
from fakes.server import free_port
from quantdesk.adapters.feeds.ccxt_feed import CcxtFeed
from quantdesk.core.errors import InvalidInputError, NotFoundError, UpstreamUnavailableError
from quantdesk.core.instruments import InstrumentKind
from quantdesk.core.market import Timeframe
from quantdesk.services.ports import BAR_COLUMNS, HistoryProvider

DAY = datetime(2025, 11, 1, tzinfo=UTC)


def assert_standard_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert all(frame[c].dtype == np.float64 for c in BAR_COLUMNS)
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique


def test_ccxt_feed_satisfies_history_provider(ccxt_feed):
    assert isinstance(ccxt_feed, HistoryProvider)


def test_ccxt_history_range_returns_every_bar_half_open(ccxt_feed, fake_binance):
    frame = ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=2))

    assert_standard_frame(frame)
    assert len(frame) == 48
    assert frame.index[0] == DAY
    assert frame.index[-1] == DAY + timedelta(days=2, hours=-1)  # the bar opening at `end` is excluded
    o, h, lo, c, v = candle("BTCUSDT", int(DAY.timestamp() * 1000), 3_600_000)
    assert frame.iloc[0].tolist() == [o, h, lo, c, v]
    [request] = fake_binance.klines_requests()
    assert request.query["symbol"] == "BTCUSDT" and request.query["interval"] == "1h"
    assert int(request.query["startTime"]) == int(DAY.timestamp() * 1000)


def test_ccxt_history_drops_the_bar_still_open_at_now(ccxt_feed):
    frame = ccxt_feed.history(BTC_SPOT, Timeframe.H1, NOW - timedelta(hours=5), NOW + timedelta(days=1))

    # 12:00 opened at NOW's hour and closes at 13:00, after NOW (12:34:56): not served.
    assert frame.index[-1] == datetime(2025, 11, 5, 11, tzinfo=UTC)
    assert frame.index[0] == datetime(2025, 11, 5, 8, tzinfo=UTC)  # first whole bar after start
    assert len(frame) == 4


def test_ccxt_history_paginates_2500_bars_in_pages_of_1000(ccxt_feed, fake_binance):
    start = datetime(2025, 11, 1, tzinfo=UTC)
    frame = ccxt_feed.history(BTC_SPOT, Timeframe.M1, start, start + timedelta(minutes=2500))

    assert len(frame) == 2500
    assert frame.index[0] == start and frame.index[-1] == start + timedelta(minutes=2499)
    assert (np.diff(frame.index.asi8) == 60 * 10**9).all()
    starts = [int(r.query["startTime"]) for r in fake_binance.klines_requests()]
    first_ms = int(start.timestamp() * 1000)
    assert starts == [first_ms, first_ms + 1000 * 60_000, first_ms + 2000 * 60_000]
    assert {r.query["limit"] for r in fake_binance.klines_requests()} == {"1000"}


def test_ccxt_history_perpetual_reads_usdm_futures(ccxt_feed, fake_binance):
    frame = ccxt_feed.history(BTC_PERP, Timeframe.H4, DAY, DAY + timedelta(days=1))

    assert len(frame) == 6
    assert fake_binance.klines_requests("usdm") and not fake_binance.klines_requests("spot")
    assert ccxt_feed.symbol_for(BTC_PERP) == "BTC/USDT:USDT"


def test_ccxt_history_before_listing_starts_at_first_bar(ccxt_feed):
    frame = ccxt_feed.history(
        BTC_SPOT, Timeframe.D1, datetime(2019, 12, 1, tzinfo=UTC), datetime(2020, 1, 10, tzinfo=UTC)
    )

    assert frame.index[0] == datetime(2020, 1, 1, tzinfo=UTC) and len(frame) == 9


def test_ccxt_history_retries_one_429_then_succeeds(ccxt_feed, fake_binance, sleeps):
    ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(hours=1))  # markets loaded
    fake_binance.rate_limited("/api/v3/klines", times=1, retry_after_s=3)

    frame = ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))

    assert len(frame) == 24
    assert sleeps == [3.0]  # Binance's Retry-After beats the 0.5 s first backoff
    assert len(fake_binance.klines_requests()) == 3


def test_ccxt_history_persistent_500_becomes_upstream_unavailable(ccxt_feed, fake_binance, sleeps):
    fake_binance.fail(
        "/api/v3/klines", 500, "<html>Internal Server Error</html>", times=None, content_type="text/html"
    )

    with pytest.raises(UpstreamUnavailableError) as info:
        ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))

    assert "binance fetch_ohlcv BTC/USDT 1h failed after 3 attempts" in info.value.message
    assert "ExchangeNotAvailable" in info.value.message
    assert info.value.code == "EXCHANGE_ERROR"
    assert sleeps == [0.5, 1.0]  # exponential backoff between the three attempts
    assert len(fake_binance.klines_requests()) == 3


def test_ccxt_history_malformed_json_is_retried_not_taken_as_empty(ccxt_feed, fake_binance, sleeps):
    fake_binance.fail("/api/v3/klines", 200, '[[1762300800000, "1.0"', content_type="application/json")

    frame = ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))

    assert len(frame) == 24 and sleeps == [0.5]


def test_ccxt_history_malformed_json_forever_names_the_cause(ccxt_feed, fake_binance):
    fake_binance.fail("/api/v3/klines", 200, "{oops", times=None, content_type="application/json")

    with pytest.raises(UpstreamUnavailableError, match="malformed JSON"):
        ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))


def test_ccxt_history_unlisted_market_is_not_found(ccxt_feed):
    with pytest.raises(NotFoundError, match="binance has no market DOGE/USDT"):
        ccxt_feed.history(DOGE_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))


def test_ccxt_history_exchange_invalid_symbol_is_not_found(ccxt_feed, fake_binance):
    fake_binance.fail("/api/v3/klines", 400, {"code": -1121, "msg": "Invalid symbol."})

    with pytest.raises(NotFoundError):
        ccxt_feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))


def test_ccxt_history_equity_is_invalid_input(ccxt_feed):
    with pytest.raises(InvalidInputError, match="not a crypto pair") as info:
        ccxt_feed.history(RELIANCE, Timeframe.D1, DAY, DAY + timedelta(days=1))
    assert info.value.field == "symbol"


def test_ccxt_history_unreachable_exchange_is_upstream_unavailable(sleeps):
    feed = CcxtFeed(
        base_url=f"http://127.0.0.1:{free_port()}",
        rate_limit=False,
        max_attempts=2,
        timeout_s=2,
        now=lambda: NOW,
        sleep=sleeps.append,
    )
    with pytest.raises(UpstreamUnavailableError, match="load_markets failed after 2 attempts"):
        feed.history(BTC_SPOT, Timeframe.H1, DAY, DAY + timedelta(days=1))


def test_ccxt_history_with_ccxt_rate_limiter_on(fake_binance, sleeps):
    feed = CcxtFeed(base_url=fake_binance.url, now=lambda: NOW, sleep=sleeps.append)  # rate_limit=True
    frame = feed.history(BTC_SPOT, Timeframe.M1, DAY, DAY + timedelta(minutes=1500))
    assert len(frame) == 1500 and len(fake_binance.klines_requests()) == 2


def test_ccxt_search_lists_spot_and_perpetual_with_precision(ccxt_feed):
    found = ccxt_feed.search("eth")

    assert [(i.symbol, i.kind) for i in found] == [
        ("ETHUSDT", InstrumentKind.PERPETUAL),
        ("ETHUSDT", InstrumentKind.SPOT),
    ]
    perp, spot = found
    assert spot.tick_size == Decimal("0.01") and spot.lot_size == Decimal("0.00001")
    assert spot.min_notional == Decimal(5) and spot.currency == "USDT"
    assert perp.tick_size == Decimal("0.1") and perp.min_notional == Decimal(100)
    assert ccxt_feed.search("xyz") == []


def test_ccxt_latest_price_polls_the_ticker(ccxt_feed, fake_binance):
    tick = ccxt_feed.latest_price(BTC_SPOT)

    minute_ms = int(NOW.timestamp()) // 60 * 60_000
    assert tick.price == Decimal(str(candle("BTCUSDT", minute_ms, 60_000)[3]))
    assert tick.at == NOW.replace(microsecond=0)
    assert fake_binance.count("/api/v3/ticker/24hr") == 1
    assert ccxt_feed.latest_price("ETH/USDT").price > 0
