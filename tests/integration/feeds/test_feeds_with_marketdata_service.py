"""Exchange feeds wired into MarketDataService over a Parquet cache: repeated requests stay local."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from feed_constants import NOW

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.feeds.reference_data import builtin_instruments
from quantdesk.services.catalog import InstrumentCatalog
from quantdesk.services.marketdata import MarketDataService

START = datetime(2025, 10, 20, tzinfo=UTC)
END = datetime(2025, 11, 1, tzinfo=UTC)


@pytest.fixture
def catalog() -> InstrumentCatalog:
    return InstrumentCatalog(builtin_instruments())


def test_ccxt_feed_second_identical_request_makes_no_http_calls(catalog, tmp_path, ccxt_feed, fake_binance):
    service = MarketDataService(
        catalog,
        ParquetBarStore(tmp_path / "bars"),
        {"ccxt": ccxt_feed},
        default_provider="ccxt",
        clock=lambda: NOW,
    )

    first = service.history("BTC_USDT", "1h", START, END)
    calls = fake_binance.count()
    second = service.history("BTC_USDT", "1h", START, END)

    assert len(first) == 12 * 24 and calls >= 1
    assert fake_binance.count() == calls  # served from the Parquet cache
    pd.testing.assert_frame_equal(first, second)

    # A wider request asks the exchange only for the missing tail.
    service.history("BTC_USDT", "1h", START, END + timedelta(days=1))
    [*_, tail] = fake_binance.klines_requests()
    assert int(tail.query["startTime"]) == int(END.timestamp() * 1000)


def test_yahoo_feed_second_identical_request_makes_no_http_calls(catalog, tmp_path, yahoo_feed, fake_yahoo):
    service = MarketDataService(
        catalog,
        ParquetBarStore(tmp_path / "bars"),
        {"yahoo": yahoo_feed},
        default_provider="yahoo",
        clock=lambda: NOW,
    )

    first = service.history("RELIANCE", "1d", START, END, exchange="NSE")
    calls = fake_yahoo.count()
    second = service.history("RELIANCE", "D", START, END, exchange="NSE")

    assert len(first) >= 8 and calls == 1
    assert fake_yahoo.count() == calls
    pd.testing.assert_frame_equal(first, second)
