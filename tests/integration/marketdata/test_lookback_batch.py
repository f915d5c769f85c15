"""Batched lookback reads give exactly what per-symbol history_lookback gives, at a fraction of the cost."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from md_constants import NOW

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.feeds.file import FileFeed
from quantdesk.core.errors import NotFoundError
from quantdesk.core.instruments import Venue
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import lookback_start
from quantdesk.services.marketdata import MarketDataService

CSV = b"""timestamp,open,high,low,close,volume
2024-03-01T00:00:00Z,10,11,9,10.5,100
2024-03-01T01:00:00Z,10.5,12,10,11,50
2024-03-01T04:00:00Z,10.2,11,9,10.4,20
"""
MIXED = ["RELIANCE", "BTCUSDT", "NOPE123", "TCS", "ETH/USDT", "MYTOKEN/USDT", "INFY", "ZZZ_USDT"]


class CountingProvider:
    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, Timeframe, datetime, datetime]] = []

    def history(self, instrument, timeframe, start, end):
        self.calls.append((instrument.symbol, timeframe, start, end))
        return self.inner.history(instrument, timeframe, start, end)

    def search(self, q):
        return self.inner.search(q)


def _service(tmp_path, name, catalog, sim, sessions, clock):
    provider = CountingProvider(sim)
    service = MarketDataService(catalog, ParquetBarStore(tmp_path / name), {"sim": provider, "file": FileFeed()},
                                sessions=sessions, clock=clock)
    service.import_bars(CSV, "MYTOKEN/USDT", "1h")
    return service, provider


@pytest.mark.parametrize("timeframe,lookback", [("1d", 30), ("1h", 50)])
def test_lookback_batch_equals_per_symbol_reads_on_a_mixed_set(tmp_path, catalog, sim, sessions, clock,
                                                               timeframe, lookback):
    one, one_calls = _service(tmp_path, "one", catalog, sim, sessions, clock)
    many, many_calls = _service(tmp_path, "many", catalog, sim, sessions, clock)
    expected = {}
    for sym in MIXED:
        try:
            expected[sym] = one.history_lookback(sym, timeframe, lookback)
        except NotFoundError:
            pass
    batch = many.lookback_batch(MIXED, timeframe, lookback)
    assert set(batch.errors) == {"NOPE123", "ZZZ_USDT"}
    assert all(isinstance(e, NotFoundError) and e.code == "SYMBOL_NOT_FOUND" for e in batch.errors.values())
    assert list(batch.symbols) == [s for s in MIXED if s in expected]
    for i, sym in enumerate(batch.symbols):
        pd.testing.assert_frame_equal(batch.frame(i), expected[sym], check_freq=False)
    assert len(expected["MYTOKEN/USDT"]) == (3 if timeframe == "1h" else 0)
    # the same ranges were asked of the provider, and the cache now holds the same coverage
    assert sorted(many_calls.calls) == sorted(one_calls.calls)
    again = many.lookback_batch(MIXED, timeframe, lookback)
    assert np.array_equal(again.values, batch.values) and np.array_equal(again.open_ns, batch.open_ns)


def test_history_lookback_many_names_every_unknown_symbol(tmp_path, catalog, sim, sessions, clock):
    service, _ = _service(tmp_path, "s", catalog, sim, sessions, clock)
    with pytest.raises(NotFoundError) as err:
        service.history_lookback_many(MIXED, "1d", 10)
    assert "NOPE123" in err.value.message and "ZZZ_USDT" in err.value.message
    frames = service.history_lookback_many(["TCS", "BTC_USDT"], "1d", 10, end=NOW - timedelta(days=3))
    assert list(frames) == ["TCS", "BTC_USDT"]
    pd.testing.assert_frame_equal(frames["TCS"], service.history_lookback("TCS", "1d", 10, end=NOW - timedelta(days=3)),
                                  check_freq=False)


@pytest.mark.parametrize("timeframe,count", [("1d", 7), ("1h", 20), ("15m", 40)])
def test_remembered_lookback_starts_match_the_calendar_walk(tmp_path, catalog, sim, sessions, clock,
                                                            timeframe, count):
    service, _ = _service(tmp_path, "s", catalog, sim, sessions, clock)
    rules, tf = sessions[Venue.NSE], Timeframe.parse(timeframe)
    end = datetime(2025, 10, 17, 0, 0, tzinfo=UTC)  # a Friday before the 21-22 Oct holidays
    while end < NOW:  # every 47 minutes over ~19 days: sessions, nights, weekends, holidays
        frame = service.history_lookback("RELIANCE", tf, count, end=end)
        start = lookback_start(rules, tf, end, count)
        assert len(frame) == count, end  # also while a session's bar is still open at ``end``
        assert frame.equals(service.history("RELIANCE", tf, start, end).iloc[-count:]), end
        end += timedelta(minutes=47)


@pytest.mark.parametrize("timeframe", ["1d", "1h"])
def test_lookback_during_a_session_returns_the_full_count_of_closed_bars(tmp_path, catalog, sim, sessions, clock,
                                                                         timeframe):
    # at 10:00 IST the day's first bar is still open: it must not take one of the asked-for bars
    service, _ = _service(tmp_path, "s", catalog, sim, sessions, clock)
    clock.at = datetime(2025, 11, 4, 4, 30, tzinfo=UTC)
    frame = service.history_lookback("RELIANCE", timeframe, 20, exchange="NSE")
    batch = service.lookback_batch(["RELIANCE"], timeframe, 20, exchange="NSE")
    assert len(frame) == 20 and len(batch.frame(0)) == 20 and frame.index[-1] < clock.at
