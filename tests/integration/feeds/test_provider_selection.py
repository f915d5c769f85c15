"""Providers are chosen per exchange by settings: crypto bars from a ccxt exchange, stocks from the sim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes.binance import FakeBinance
from kit.app import make_settings
from quantdesk.app import build_market


def test_crypto_from_ccxt_stocks_from_sim(tmp_path):
    now = datetime.now(UTC)
    with FakeBinance(now) as fake:
        market = build_market(make_settings(tmp_path, crypto_provider="ccxt", ccxt_base_url=fake.url))
        end = now.replace(second=0, microsecond=0) - timedelta(hours=1)
        bars = market.history("BTC/USDT", "1m", end - timedelta(minutes=30), end)
        assert len(bars) == 30
        assert fake.klines_requests("spot")
        before = fake.count()
        daily = market.history_lookback("RELIANCE", "D", 5, exchange="NSE")
        assert len(daily) == 5 and fake.count() == before  # the exchange saw nothing for a stock
