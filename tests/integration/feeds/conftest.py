"""Fake exchange servers on free 127.0.0.1 ports and feeds pointed at them."""

import pytest
from feed_constants import NOW, OPENALGO_KEY

from fakes.binance import FakeBinance
from fakes.openalgo import FakeOpenAlgo
from fakes.yahoo import FakeYahoo
from quantdesk.adapters.feeds.ccxt_feed import CcxtFeed
from quantdesk.adapters.feeds.openalgo import OpenAlgoFeed
from quantdesk.adapters.feeds.yahoo import YahooFeed


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the feed asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def fake_binance():
    with FakeBinance(NOW) as fake:
        yield fake


@pytest.fixture
def ccxt_feed(fake_binance, sleeps) -> CcxtFeed:
    return CcxtFeed(
        "binance",
        base_url=fake_binance.url,
        rate_limit=False,
        max_attempts=3,
        now=lambda: NOW,
        sleep=sleeps.append,
    )


@pytest.fixture
def fake_yahoo():
    with FakeYahoo(NOW) as fake:
        yield fake


@pytest.fixture
def yahoo_feed(fake_yahoo, sleeps):
    with YahooFeed(fake_yahoo.url, max_attempts=3, timeout_s=5, now=lambda: NOW, sleep=sleeps.append) as feed:
        yield feed


@pytest.fixture
def fake_openalgo():
    with FakeOpenAlgo(NOW, api_key=OPENALGO_KEY) as fake:
        yield fake


@pytest.fixture
def openalgo_feed(fake_openalgo, sleeps):
    with OpenAlgoFeed(
        fake_openalgo.url, OPENALGO_KEY, max_attempts=3, timeout_s=5, now=lambda: NOW, sleep=sleeps.append
    ) as feed:
        yield feed
