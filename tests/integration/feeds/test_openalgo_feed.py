"""OpenAlgoFeed against a fake OpenAlgo server speaking REST API v1."""

import socket
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from feed_constants import BTC_SPOT, NIFTY, NOSUCH, NOW, OPENALGO_KEY, RELIANCE

from fakes.candles import candle
from fakes.openalgo import FakeOpenAlgo
from fakes.server import free_port
from quantdesk.adapters.feeds.openalgo import OpenAlgoFeed
from quantdesk.core.errors import InvalidInputError, NotFoundError, UpstreamUnavailableError
from quantdesk.core.instruments import InstrumentKind, Venue
from quantdesk.core.market import Timeframe
from quantdesk.services.ports import BAR_COLUMNS, HistoryProvider

IST = ZoneInfo("Asia/Kolkata")
OCT = datetime(2025, 10, 1, tzinfo=UTC)
NOV = datetime(2025, 11, 1, tzinfo=UTC)
HISTORY = "/api/v1/history"


def session_open(day: date) -> datetime:
    return datetime.combine(day, time(9, 15), IST).astimezone(UTC)


def weekdays(first: date, last: date) -> list[date]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 5]


def test_openalgo_feed_satisfies_history_provider(openalgo_feed):
    assert isinstance(openalgo_feed, HistoryProvider)


def test_openalgo_daily_bars_are_keyed_at_session_open(openalgo_feed, fake_openalgo):
    frame = openalgo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert list(frame.columns) == list(BAR_COLUMNS) and all(frame[c].dtype == np.float64 for c in BAR_COLUMNS)
    assert str(frame.index.tz) == "UTC"
    # The server stamps daily candles 00:00 IST; quantdesk keys them at the 09:15 IST open.
    assert list(frame.index) == [session_open(d) for d in weekdays(date(2025, 10, 1), date(2025, 10, 31))]
    o, h, lo, c, v = candle("NSE:RELIANCE", int(frame.index[0].timestamp() * 1000), 22_500_000)
    assert frame.iloc[0].tolist() == [o, h, lo, c, float(int(v * 100))]
    [body] = fake_openalgo.history_requests()
    assert body == {
        "apikey": OPENALGO_KEY,
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "interval": "D",
        "start_date": "2025-10-01",
        "end_date": "2025-11-01",  # NOV 00:00 UTC is 05:30 IST on 1 November
    }


def test_openalgo_end_is_exclusive_and_index_uses_its_segment(openalgo_feed, fake_openalgo):
    end = session_open(date(2025, 10, 31))
    frame = openalgo_feed.history(NIFTY, Timeframe.D1, OCT, end)

    assert frame.index[-1] == session_open(date(2025, 10, 30))
    assert fake_openalgo.history_requests()[0]["exchange"] == "NSE_INDEX"


def test_openalgo_minute_history_pages_by_thirty_days(openalgo_feed, fake_openalgo):
    start = datetime(2025, 9, 1, tzinfo=UTC)
    frame = openalgo_feed.history(RELIANCE, Timeframe.M1, start, NOW)

    opens = [
        session_open(d) + timedelta(minutes=k)
        for d in weekdays(date(2025, 9, 1), date(2025, 11, 5))
        for k in range(375)
    ]
    assert len(frame) == len(opens) and frame.index[0] == opens[0] and frame.index[-1] == opens[-1]
    assert frame.index.is_unique
    pages = [(b["start_date"], b["end_date"]) for b in fake_openalgo.history_requests()]
    assert pages == [("2025-09-01", "2025-09-30"), ("2025-10-01", "2025-10-30"), ("2025-10-31", "2025-11-05")]


def test_openalgo_bar_in_progress_is_dropped(sleeps):
    in_session = datetime(2025, 11, 4, 6, 2, 0, tzinfo=UTC)  # 11:32 IST
    with (
        FakeOpenAlgo(in_session, api_key=OPENALGO_KEY) as fake,
        OpenAlgoFeed(fake.url, OPENALGO_KEY, now=lambda: in_session, sleep=sleeps.append) as feed,
    ):
        frame = feed.history(
            RELIANCE, Timeframe.M15, session_open(date(2025, 11, 4)), in_session + timedelta(hours=2)
        )

    # 09:15 ... 11:15 IST are closed; the 11:30 bar (sent by the server) closes at 11:45.
    assert list(frame.index) == [
        session_open(date(2025, 11, 4)) + timedelta(minutes=15 * k) for k in range(9)
    ]


def test_openalgo_retries_one_429_then_succeeds(openalgo_feed, fake_openalgo, sleeps):
    fake_openalgo.fail(HISTORY, 429, "<title>429 Too Many Requests</title>", headers={"Retry-After": "1"})

    frame = openalgo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert len(frame) == 23 and sleeps == [1.0] and fake_openalgo.count(HISTORY) == 2


def test_openalgo_persistent_503_becomes_upstream_unavailable(openalgo_feed, fake_openalgo, sleeps):
    fake_openalgo.fail(HISTORY, 503, "broker session expired", times=None)

    with pytest.raises(UpstreamUnavailableError) as info:
        openalgo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)

    assert info.value.message.startswith("OpenAlgo history NSE:RELIANCE D failed after 3 attempts: HTTP 503")
    assert sleeps == [0.5, 1.0] and fake_openalgo.count(HISTORY) == 3


def test_openalgo_malformed_json_is_retried(openalgo_feed, fake_openalgo, sleeps):
    fake_openalgo.fail(HISTORY, 200, '{"status": "success", "data": [', content_type="application/json")

    assert len(openalgo_feed.history(RELIANCE, Timeframe.D1, OCT, NOV)) == 23
    assert sleeps == [0.5]


def test_openalgo_unknown_symbol_is_not_found(openalgo_feed, fake_openalgo):
    with pytest.raises(NotFoundError, match="OpenAlgo has no symbol NOSUCHCO"):
        openalgo_feed.history(NOSUCH, Timeframe.D1, OCT, NOV)
    assert fake_openalgo.count(HISTORY) == 1


def test_openalgo_rejected_api_key_is_reported_without_the_key(fake_openalgo, sleeps):
    with OpenAlgoFeed(fake_openalgo.url, "wrong-key-123", now=lambda: NOW, sleep=sleeps.append) as feed:
        with pytest.raises(UpstreamUnavailableError) as info:
            feed.history(RELIANCE, Timeframe.D1, OCT, NOV)
        assert "wrong-key-123" not in repr(feed)

    assert info.value.code == "UPSTREAM_AUTH_FAILED" and "Invalid openalgo apikey" in info.value.message
    assert "wrong-key-123" not in info.value.message and sleeps == []


def test_openalgo_unsupported_requests_are_invalid_input(openalgo_feed, fake_openalgo):
    with pytest.raises(InvalidInputError, match="timeframe 4h is not offered by OpenAlgo"):
        openalgo_feed.history(RELIANCE, Timeframe.H4, OCT, NOV)
    with pytest.raises(InvalidInputError, match="not on an Indian exchange"):
        openalgo_feed.history(BTC_SPOT, Timeframe.D1, OCT, NOV)
    assert fake_openalgo.count() == 0


def test_openalgo_unreachable_history_is_upstream_unavailable(sleeps):
    with OpenAlgoFeed(
        f"http://127.0.0.1:{free_port()}", OPENALGO_KEY, max_attempts=2, sleep=sleeps.append
    ) as feed:
        with pytest.raises(UpstreamUnavailableError, match="failed after 2 attempts: ConnectError"):
            feed.history(RELIANCE, Timeframe.D1, OCT, NOV)


def test_openalgo_search_lists_cash_stocks_and_indices(openalgo_feed, fake_openalgo):
    found = openalgo_feed.search("reli")

    assert [(i.id.venue, i.symbol, i.kind) for i in found] == [
        (Venue.NSE, "RELIANCE", InstrumentKind.EQUITY),
        (Venue.BSE, "RELIANCE", InstrumentKind.EQUITY),
        (Venue.NSE, "RPOWER", InstrumentKind.EQUITY),
    ]  # the NFO future is left out
    assert found[0].tick_size == Decimal("0.1") and found[0].name == "RELIANCE INDUSTRIES LTD"
    assert [i.id.venue for i in openalgo_feed.search("reli", exchange="bse")] == [Venue.BSE]
    assert fake_openalgo.requests[-1].json() == {"apikey": OPENALGO_KEY, "query": "reli", "exchange": "BSE"}
    [nifty] = openalgo_feed.search("nifty")
    assert nifty.kind == InstrumentKind.INDEX and nifty.id.key == "NSE:NIFTY"


def test_openalgo_ping_against_server_is_connected(openalgo_feed, fake_openalgo):
    connected, message = openalgo_feed.ping()

    assert connected is True
    assert message == f"connected to OpenAlgo at {fake_openalgo.url} (broker zerodha)"
    assert fake_openalgo.requests[-1].json() == {"apikey": OPENALGO_KEY}


def test_openalgo_ping_falls_back_to_funds_on_servers_without_ping():
    with (
        FakeOpenAlgo(NOW, api_key=OPENALGO_KEY, with_ping=False) as fake,
        OpenAlgoFeed(fake.url, OPENALGO_KEY) as feed,
    ):
        assert feed.ping() == (True, f"connected to OpenAlgo at {fake.url}")
        assert [r.path for r in fake.requests] == ["/api/v1/ping", "/api/v1/funds"]


def test_openalgo_ping_closed_port_is_refused():
    url = f"http://127.0.0.1:{free_port()}"
    with OpenAlgoFeed(url, OPENALGO_KEY, timeout_s=2) as feed:
        connected, message = feed.ping()

    assert connected is False
    assert message == f"cannot connect to OpenAlgo at {url}: connection refused"


def test_openalgo_ping_wrong_key_and_error_status_are_not_connected(fake_openalgo):
    with OpenAlgoFeed(fake_openalgo.url, "nope") as feed:
        assert feed.ping() == (
            False,
            f"OpenAlgo at {fake_openalgo.url} rejected the API key: Invalid openalgo apikey",
        )
    with OpenAlgoFeed(fake_openalgo.url, OPENALGO_KEY) as feed:
        fake_openalgo.fail("/api/v1/ping", 500, "<h1>Internal Server Error</h1>", content_type="text/html")
        connected, message = feed.ping()
    assert connected is False and "HTTP 500" in message


def test_openalgo_ping_silent_server_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with OpenAlgoFeed(url, OPENALGO_KEY, timeout_s=0.2) as feed:
            connected, message = feed.ping()

    assert connected is False
    assert message == f"OpenAlgo at {url} did not answer within 0.2 s (timeout)"
