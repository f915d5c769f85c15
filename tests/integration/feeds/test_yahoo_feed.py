"""YahooFeed against a fake Yahoo Finance chart/search server speaking the real JSON."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from feed_constants import BTC_SPOT, NOSUCH, NOW, RELIANCE

from fakes.candles import candle
from fakes.server import free_port
from fakes.yahoo import FakeYahoo
from quantdesk.adapters.feeds.yahoo import YahooFeed
from quantdesk.core.errors import InvalidInputError, NotFoundError, UpstreamUnavailableError
from quantdesk.core.instruments import InstrumentKind, Venue
from quantdesk.core.market import Timeframe
from quantdesk.services.ports import BAR_COLUMNS, HistoryProvider

IST = ZoneInfo("Asia/Kolkata")
OCT = datetime(2025, 10, 1, tzinfo=UTC)
NOV = datetime(2025, 11, 1, tzinfo=UTC)
CHART = "/v8/finance/chart/RELIANCE.NS"


def session_open(day: date) -> datetime:
    return datetime.combine(day, time(9, 15), IST).astimezone(UTC)


def weekdays(first: date, last: date) -> list[date]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 5]


def expected_opens(fake: FakeYahoo, symbol: str, opens: list[datetime]) -> list[datetime]:
    return [t for t in opens if not fake.is_null_bar(symbol, int(t.timestamp()))]


def assert_standard_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert all(frame[c].dtype == np.float64 for c in BAR_COLUMNS)
    assert str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing and frame.index.is_unique


def test_yahoo_feed_satisfies_history_provider(yahoo_feed):
    assert isinstance(yahoo_feed, HistoryProvider)


def test_yahoo_daily_range_keys_bars_at_session_open(yahoo_feed, fake_yahoo):
    frame = yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert_standard_frame(frame)
    opens = [session_open(d) for d in weekdays(date(2025, 10, 1), date(2025, 10, 31))]
    assert list(frame.index) == expected_opens(fake_yahoo, "RELIANCE.NS", opens)
    assert frame.index[0] == datetime(2025, 10, 1, 3, 45, tzinfo=UTC)
    first_s = int(frame.index[0].timestamp())
    o, h, lo, c, v = candle("RELIANCE.NS", first_s * 1000, 86_400_000)
    assert frame.iloc[0].tolist() == [o, h, lo, c, float(int(v * 1000))]
    [request] = fake_yahoo.chart_requests()
    assert request.query["interval"] == "1d" and int(request.query["period1"]) == int(OCT.timestamp())
    assert request.headers["user-agent"].startswith("Mozilla/")


def test_yahoo_daily_end_is_exclusive(yahoo_feed):
    end = session_open(date(2025, 10, 31))
    frame = yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, end)

    assert frame.index[-1] < end and frame.index[-1] >= session_open(date(2025, 10, 29))


def test_yahoo_todays_daily_bar_served_once_the_session_closed(yahoo_feed):
    # The fake stamps today's daily bar with the last trade time (15:29:59 IST), as Yahoo does.
    frame = yahoo_feed.history(RELIANCE, Timeframe.D1, NOV, NOW + timedelta(days=3))

    assert frame.index[-1] == session_open(date(2025, 11, 5))  # closed at 10:00 UTC, before NOW


def test_yahoo_hourly_bars_follow_the_nse_session_grid(yahoo_feed, fake_yahoo):
    day = date(2025, 11, 4)
    frame = yahoo_feed.history(
        RELIANCE, Timeframe.H1, session_open(day), session_open(day) + timedelta(hours=7)
    )

    opens = [session_open(day) + timedelta(hours=k) for k in range(7)]  # 09:15 ... 15:15 IST
    assert list(frame.index) == expected_opens(fake_yahoo, "RELIANCE.NS", opens)
    assert fake_yahoo.chart_requests()[0].query["interval"] == "60m"


def test_yahoo_minute_range_pages_by_seven_days_and_skips_null_bars(yahoo_feed, fake_yahoo):
    start = datetime(2025, 10, 16, tzinfo=UTC)
    end = datetime(2025, 11, 5, tzinfo=UTC)
    frame = yahoo_feed.history(RELIANCE, Timeframe.M1, start, end)

    opens = [
        session_open(d) + timedelta(minutes=k)
        for d in weekdays(date(2025, 10, 16), date(2025, 11, 4))
        for k in range(375)
    ]
    expected = expected_opens(fake_yahoo, "RELIANCE.NS", opens)
    assert len(opens) - len(expected) > 0  # the fake did send null bars in this range
    assert list(frame.index) == expected
    spans = [(int(r.query["period1"]), int(r.query["period2"])) for r in fake_yahoo.chart_requests()]
    assert spans == [
        (
            int(start.timestamp()) + k * 7 * 86400,
            min(int(start.timestamp()) + (k + 1) * 7 * 86400, int(end.timestamp())),
        )
        for k in range(3)
    ]


def test_yahoo_intraday_bar_in_progress_is_dropped(sleeps):
    in_session = datetime(2025, 11, 4, 6, 0, 30, tzinfo=UTC)  # 11:30:30 IST
    with (
        FakeYahoo(in_session) as fake,
        YahooFeed(fake.url, now=lambda: in_session, sleep=sleeps.append) as feed,
    ):
        frame = feed.history(
            RELIANCE, Timeframe.M5, session_open(date(2025, 11, 4)), in_session + timedelta(hours=1)
        )
        stamps = fake.chart_requests()

    assert stamps  # the fake sent the 11:30 bar stamped 11:30:30; it closes at 11:35, after now
    opens = [session_open(date(2025, 11, 4)) + timedelta(minutes=5 * k) for k in range(27)]  # 09:15 ... 11:25
    assert list(frame.index) == expected_opens(fake, "RELIANCE.NS", opens)


def test_yahoo_retries_one_429_then_succeeds(yahoo_feed, fake_yahoo, sleeps):
    fake_yahoo.fail(CHART, 429, "Too Many Requests\r\n", headers={"Retry-After": "2"})

    frame = yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert len(frame) > 20 and sleeps == [2.0] and len(fake_yahoo.chart_requests()) == 2


def test_yahoo_persistent_500_becomes_upstream_unavailable(yahoo_feed, fake_yahoo, sleeps):
    fake_yahoo.fail(CHART, 500, "upstream connect error", times=None)

    with pytest.raises(UpstreamUnavailableError) as info:
        yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert info.value.message.startswith("Yahoo chart RELIANCE.NS 1d failed after 3 attempts: HTTP 500")
    assert sleeps == [0.5, 1.0] and len(fake_yahoo.chart_requests()) == 3


def test_yahoo_malformed_json_is_retried_then_reported(yahoo_feed, fake_yahoo, sleeps):
    fake_yahoo.fail(CHART, 200, '{"chart": {"result": [', content_type="application/json")
    assert len(yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)) > 20
    assert sleeps == [0.5]

    fake_yahoo.fail(CHART, 200, "<html>", times=None, content_type="text/html")
    with pytest.raises(UpstreamUnavailableError, match="malformed JSON"):
        yahoo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)


def test_yahoo_unknown_symbol_is_not_found(yahoo_feed, fake_yahoo):
    with pytest.raises(NotFoundError, match="Yahoo has no symbol NOSUCHCO.NS: No data found"):
        yahoo_feed.history(NOSUCH, Timeframe.D1, OCT, NOV)
    assert len(fake_yahoo.chart_requests()) == 1  # not retried


def test_yahoo_minute_data_older_than_30_days_is_invalid_input(yahoo_feed):
    with pytest.raises(InvalidInputError, match="within the last 30 days"):
        yahoo_feed.history(
            RELIANCE, Timeframe.M1, datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 9, 2, tzinfo=UTC)
        )


def test_yahoo_four_hour_bars_are_invalid_input(yahoo_feed, fake_yahoo):
    with pytest.raises(InvalidInputError, match="timeframe 4h is not offered by Yahoo") as info:
        yahoo_feed.history(RELIANCE, Timeframe.H4, OCT, NOV)
    assert info.value.field == "timeframe" and fake_yahoo.count() == 0


def test_yahoo_unreachable_is_upstream_unavailable(sleeps):
    with YahooFeed(
        f"http://127.0.0.1:{free_port()}", max_attempts=2, now=lambda: NOW, sleep=sleeps.append
    ) as feed:
        with pytest.raises(UpstreamUnavailableError, match="failed after 2 attempts: ConnectError"):
            feed.history(RELIANCE, Timeframe.D1, OCT, NOV)


def test_yahoo_symbols(yahoo_feed):
    assert yahoo_feed.symbol_for(RELIANCE) == "RELIANCE.NS"
    assert yahoo_feed.symbol_for(BTC_SPOT) == "BTC-USDT"


def test_yahoo_search_maps_nse_and_bse_and_skips_other_venues(yahoo_feed, fake_yahoo):
    found = yahoo_feed.search("reli")

    assert [(i.id.venue, i.symbol, i.kind) for i in found] == [
        (Venue.NSE, "RELIANCE", InstrumentKind.EQUITY),
        (Venue.BSE, "RELIANCE", InstrumentKind.EQUITY),
        (Venue.NSE, "RPOWER", InstrumentKind.EQUITY),
    ]  # RELY (NASDAQ) is left out
    assert found[0].name == "Reliance Industries Limited" and found[0].currency == "INR"
    assert fake_yahoo.requests[-1].query["q"] == "reli"

    [nifty] = yahoo_feed.search("nifty")
    assert nifty.id.key == "NSE:NIFTY" and nifty.kind == InstrumentKind.INDEX
    [btc] = yahoo_feed.search("bitcoin")
    assert btc.id.key == "BTCUSD" and btc.kind == InstrumentKind.SPOT
