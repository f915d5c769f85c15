"""Constants and helpers shared by the broker adapter tests."""

from datetime import UTC, datetime
from decimal import Decimal

from fakes.binance import FakeBinance
from quantdesk.adapters.brokers.ccxt_broker import CcxtBroker

NOW = datetime(2025, 11, 5, 12, 34, 56, tzinfo=UTC)
API_KEY = "test-key-3f9a"
SECRET = "test-secret-1c2d3e4f"
BTC_PRICE = Decimal("50000")


def make_broker(fake: FakeBinance, sleeps: list[float], *, secret: str = SECRET, max_attempts: int = 3) -> CcxtBroker:
    return CcxtBroker("binance", API_KEY, secret, base_url=fake.url, rate_limit=False, max_attempts=max_attempts,
                      backoff_s=0.25, sleep=sleeps.append)
