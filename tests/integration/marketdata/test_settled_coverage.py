"""Coverage follows the session calendar: no provider call for bars that cannot exist yet, none missed."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.feeds.sim import empty_bars
from quantdesk.core.sessions import bar_close_at
from quantdesk.services.marketdata import MarketDataService

SYMBOLS = ["RELIANCE", "TCS", "INFY"]
FRIDAY_AFTER_CLOSE = datetime(2025, 10, 31, 11, 0, tzinfo=UTC)


class RecordingProvider:
    """The sim, recording every range asked; ``lag`` hides bars closed less than that long ago."""

    def __init__(self, inner, clock, sessions, lag=timedelta(0)):
        self.inner, self.name, self.clock, self.sessions, self.lag = inner, inner.name, clock, sessions, lag
        self.calls: list[tuple[str, datetime, datetime]] = []

    def history(self, instrument, timeframe, start, end):
        self.calls.append((instrument.symbol, start, end))
        bars = self.inner.history(instrument, timeframe, start, end)
        rules = self.sessions[instrument.id.venue]
        published = [bar_close_at(rules, timeframe, o) <= self.clock() - self.lag for o in bars.index]
        return bars[np.array(published, dtype=bool)] if len(bars) else empty_bars()

    def search(self, q):
        return self.inner.search(q)


def _service(tmp_path, name, catalog, sim, sessions, clock, lag=timedelta(0)):
    provider = RecordingProvider(sim, clock, sessions, lag)
    service = MarketDataService(catalog, ParquetBarStore(tmp_path / name), {"sim": provider},
                                sessions=sessions, clock=clock)
    return service, provider


def _truth(tmp_path, catalog, sim, sessions, clock, tf="1d", count=30):
    fresh, _ = _service(tmp_path, f"fresh-{clock().timestamp()}", catalog, sim, sessions, clock)
    return {s: fresh.history_lookback(s, tf, count, exchange="NSE") for s in SYMBOLS}


def _check(service, truth, tf="1d", count=30):
    batch = service.lookback_batch(SYMBOLS, tf, count, exchange="NSE")
    for i, sym in enumerate(batch.symbols):
        pd.testing.assert_frame_equal(batch.frame(i), truth[sym], check_freq=False)
        single = service.history_lookback(sym, tf, count, exchange="NSE")
        pd.testing.assert_frame_equal(single, truth[sym], check_freq=False)


def test_nse_daily_is_not_asked_again_until_a_new_session_closes(tmp_path, catalog, sim, sessions, clock):
    clock.at = FRIDAY_AFTER_CLOSE
    service, provider = _service(tmp_path, "cache", catalog, sim, sessions, clock)
    _check(service, _truth(tmp_path, catalog, sim, sessions, clock))
    assert {s for s, _, _ in provider.calls} == set(SYMBOLS)
    # the weekend, Monday before the open and during Monday's session: nothing can have closed
    for at in (datetime(2025, 11, 1, 8, tzinfo=UTC), datetime(2025, 11, 3, 3, 0, tzinfo=UTC),
               datetime(2025, 11, 3, 6, 0, tzinfo=UTC)):
        clock.at = at
        asked = len(provider.calls)
        _check(service, _truth(tmp_path, catalog, sim, sessions, clock))
        assert len(provider.calls) == asked, at
    # Monday after the close: one call per symbol, and Monday's bar is there
    clock.at = datetime(2025, 11, 3, 10, 5, tzinfo=UTC)
    asked = len(provider.calls)
    truth = _truth(tmp_path, catalog, sim, sessions, clock)
    _check(service, truth)
    assert len(provider.calls) == asked + len(SYMBOLS)
    assert all(frame.index[-1] == datetime(2025, 11, 3, 3, 45, tzinfo=UTC) for frame in truth.values())


def test_provider_late_with_the_newest_bar_is_asked_again(tmp_path, catalog, sim, sessions, clock):
    clock.at = datetime(2025, 11, 3, 10, 30, tzinfo=UTC)  # Monday, 30 minutes after the close
    service, provider = _service(tmp_path, "cache", catalog, sim, sessions, clock, lag=timedelta(hours=1))
    first = service.lookback_batch(SYMBOLS, "1d", 30, exchange="NSE")
    assert first.frame(0).index[-1] == datetime(2025, 10, 31, 3, 45, tzinfo=UTC)  # not published yet
    clock.at = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
    asked = len(provider.calls)
    _check(service, _truth(tmp_path, catalog, sim, sessions, clock))
    assert len(provider.calls) > asked
    assert service.history_lookback("TCS", "1d", 30, exchange="NSE").index[-1] == datetime(2025, 11, 3, 3, 45,
                                                                                             tzinfo=UTC)


@pytest.mark.parametrize("tf", ["1h", "15m"])
def test_nse_intraday_through_a_session_matches_a_fresh_read(tmp_path, catalog, sim, sessions, clock, tf):
    service, provider = _service(tmp_path, "cache", catalog, sim, sessions, clock)
    start = datetime(2025, 10, 31, 2, 0, tzinfo=UTC)
    for minutes in range(0, 60 * 30, 47):
        clock.at = start + timedelta(minutes=minutes)
        _check(service, _truth(tmp_path, catalog, sim, sessions, clock, tf, 40), tf, 40)
    # closed-market hours asked nothing: every call began before a bar that could have closed
    assert len(provider.calls) < len(range(0, 60 * 30, 47)) * len(SYMBOLS)
