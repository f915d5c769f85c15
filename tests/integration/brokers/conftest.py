"""A fake Binance USD-M futures venue on 127.0.0.1 and a CcxtBroker signed with its test secret."""

from decimal import Decimal

import pytest
from broker_constants import API_KEY, BTC_PRICE, NOW, SECRET, make_broker

from fakes.binance import FakeBinance, FuturesVenue
from quantdesk.adapters.brokers.ccxt_broker import CcxtBroker


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the broker asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def fake_binance():
    with FakeBinance(NOW) as fake:
        yield fake


@pytest.fixture
def venue(fake_binance) -> FuturesVenue:
    return fake_binance.enable_futures_trading(API_KEY, SECRET, balance=Decimal(10_000),
                                               prices={"BTCUSDT": BTC_PRICE, "ETHUSDT": Decimal("3000")})


@pytest.fixture
def broker(fake_binance, venue, sleeps) -> CcxtBroker:
    return make_broker(fake_binance, sleeps)
