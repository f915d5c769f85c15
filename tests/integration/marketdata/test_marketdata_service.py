from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from md_constants import NOW

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.feeds.file import FileFeed
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.market import Timeframe
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.ports import BarStore, HistoryProvider

JAN = datetime(2025, 10, 1, tzinfo=UTC)


class CountingProvider:
    """Wraps a provider and records every range it is asked for."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, Timeframe, datetime, datetime]] = []

    def history(self, instrument, timeframe, start, end):
        self.calls.append((instrument.symbol, timeframe, start, end))
        return self.inner.history(instrument, timeframe, start, end)

    def search(self, q):
        return self.inner.search(q)


@pytest.fixture
def counting(sim):
    return CountingProvider(sim)


@pytest.fixture
def store(tmp_path):
    return ParquetBarStore(tmp_path / "bars")


@pytest.fixture
def service(catalog, store, counting, sessions, clock):
    return MarketDataService(
        catalog, store, {"sim": counting, "file": FileFeed()}, sessions=sessions, clock=clock
    )


def test_adapters_satisfy_ports(sim, store):
    assert isinstance(sim, HistoryProvider)
    assert isinstance(FileFeed(), HistoryProvider)
    assert isinstance(store, BarStore)


def test_service_second_identical_request_is_served_from_cache(service, counting, sim, catalog):
    end = datetime(2025, 10, 20, tzinfo=UTC)
    first = service.history("BTC_USDT", "1h", JAN, end)
    assert len(counting.calls) == 1
    second = service.history("BTC/USDT", "1h", JAN, end)
    assert len(counting.calls) == 1
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, sim.history(catalog.resolve("BTCUSDT"), Timeframe.H1, JAN, end))


def test_service_fetches_only_missing_ranges(service, counting):
    a, b, c, d = (datetime(2025, 10, day, tzinfo=UTC) for day in (5, 10, 15, 20))
    service.history("ETHUSDT", "15m", b, c)
    service.history("ETHUSDT", "15m", a, d)  # needs [a, b) and [c, d) only
    assert [(s, e) for _, _, s, e in counting.calls] == [(b, c), (a, b), (c, d)]
    service.history("ETHUSDT", "15m", a + timedelta(hours=3), d - timedelta(hours=3))
    assert len(counting.calls) == 3
    frame = service.history("ETHUSDT", "15m", a, d)
    assert len(frame) == 15 * 96 and frame.index.is_unique and frame.index.is_monotonic_increasing


def test_service_cache_is_per_timeframe_and_instrument(service, counting):
    end = datetime(2025, 10, 3, tzinfo=UTC)
    service.history("BTCUSDT", "1h", JAN, end)
    service.history("BTCUSDT", "4h", JAN, end)
    service.history("SOLUSDT", "1h", JAN, end)
    assert len(counting.calls) == 3


def test_service_near_now_fetches_only_the_new_tail(service, counting, clock):
    frame = service.history("BTCUSDT", "1m", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert frame.index[-1] == datetime(2025, 11, 5, 12, 33, tzinfo=UTC)
    clock.at = NOW + timedelta(minutes=5)
    later = service.history("BTCUSDT", "1m", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert later.index[-1] == datetime(2025, 11, 5, 12, 38, tzinfo=UTC)
    tail_start = counting.calls[-1][2]
    assert tail_start >= datetime(2025, 11, 5, 12, 33, tzinfo=UTC)
    pd.testing.assert_frame_equal(later.iloc[: len(frame)], frame)


def test_service_nse_daily_after_close_is_cached_without_refetch(service, counting, clock):
    clock.at = datetime(2025, 11, 4, 11, 0, tzinfo=UTC)
    first = service.history("RELIANCE", "D", JAN, clock.at, exchange="NSE")
    assert first.index[-1] == datetime(2025, 11, 4, 3, 45, tzinfo=UTC)
    calls = len(counting.calls)
    again = service.history("RELIANCE", "D", JAN, clock.at, exchange="NSE")
    pd.testing.assert_frame_equal(first, again)
    # at most an empty look at the unfinished tail, never the whole range again
    assert all(start >= datetime(2025, 11, 4, 3, 45, tzinfo=UTC) for _, _, start, _ in counting.calls[calls:])


def test_service_lookback_returns_last_n_closed_bars(service):
    frame = service.history_lookback("RELIANCE", "D", 100, exchange="NSE")
    assert len(frame) == 100
    assert frame.index[-1] < NOW
    minutes = service.history_lookback("BTCUSDT", "5m", 12)
    assert len(minutes) == 12 and minutes.index[-1] == datetime(2025, 11, 5, 12, 25, tzinfo=UTC)


def test_service_defaults_and_iso_strings(service):
    frame = service.history("ETH_USDT", "1h", "2025-10-01T00:00:00Z", "2025-10-02")
    assert len(frame) == 24
    assert len(service.history("ETHUSDT", "1h", limit=10)) == 10


def test_service_start_after_end_names_the_field(service, counting):
    with pytest.raises(InvalidInputError) as err:
        service.history("BTCUSDT", "1h", "2025-10-10", "2025-10-01")
    assert err.value.field == "start"
    assert counting.calls == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeframe": "7m"}, "timeframe"),
        ({"start": "yesterday"}, "start"),
        ({"end": datetime(2025, 10, 2)}, "end"),  # naive
        ({"limit": 0}, "limit"),
    ],
)
def test_service_bad_inputs_are_invalid_input(service, kwargs, field):
    args = {"timeframe": "1h", "start": JAN, "end": datetime(2025, 10, 2, tzinfo=UTC)} | kwargs
    with pytest.raises(InvalidInputError) as err:
        service.history("BTCUSDT", **args)
    assert err.value.field == field


def test_service_unknown_symbol_not_found(service):
    with pytest.raises(NotFoundError) as err:
        service.history("FOO/USDT", "1h")
    assert "FOO/USDT" in err.value.message


def test_service_clear_empties_cache(service, counting, store):
    end = datetime(2025, 10, 2, tzinfo=UTC)
    service.history("BTCUSDT", "1h", JAN, end)
    service.clear()
    assert store.series() == []
    service.history("BTCUSDT", "1h", JAN, end)
    assert len(counting.calls) == 2


def test_service_search_validate_list(service):
    assert service.search_symbols("RELI", "NSE")[0].symbol == "RELIANCE"
    assert service.validate_symbol("RELIANCE", "NSE")
    assert not service.validate_symbol("RELIANCEX", "NSE")
    assert {i.symbol for i in service.list_symbols("crypto", "spot")} >= {"BTCUSDT", "ETHUSDT", "LTCUSDT"}


CSV = b"""timestamp,open,high,low,close,volume
2024-03-01T00:00:00Z,10,11,9,10.5,100
2024-03-01T01:00:00Z,10.5,12,10,11,50
2024-03-01T02:00:00Z,11,10,9,10,50
2024-03-01T03:00:00Z,10,11,9,10.2,-5
2024-03-01T04:00:00Z,10.2,11,9,10.4,20
"""


def test_service_import_caches_accepted_rows_and_reports_rejects(service, catalog):
    report = service.import_bars(CSV, "MYTOKEN/USDT", "1h")
    assert report.accepted == 3
    assert [(r.row, r.reason) for r in report.rejected] == [
        (3, "high below max(open, close)"),
        (4, "negative volume"),
    ]
    assert catalog.resolve("MYTOKEN_USDT").symbol == "MYTOKENUSDT"
    frame = service.history("MYTOKENUSDT", "1h", "2024-03-01", "2024-03-02")
    assert frame["close"].tolist() == [10.5, 11.0, 10.4]


def test_service_import_malformed_file_raises_and_caches_nothing(service, store, catalog):
    with pytest.raises(InvalidInputError) as err:
        service.import_bars(b"timestamp,open,close\n2024-01-01,1,2\n", "BADFILE", "1h", exchange="NSE")
    assert "high" in err.value.message and "volume" in err.value.message
    assert store.series() == []
    assert not catalog.exists("BADFILE", "NSE")


def test_store_read_slices_half_open_and_roundtrips_exactly(store, sim, catalog):
    btc = catalog.resolve("BTCUSDT")
    frame = sim.history(btc, Timeframe.M1, JAN, JAN + timedelta(days=2))
    store.write("sim", btc.id.key, Timeframe.M1, frame, [(JAN, JAN + timedelta(days=2))])
    back = store.read("sim", btc.id.key, Timeframe.M1, JAN, JAN + timedelta(days=2))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    part = store.read(
        "sim", btc.id.key, Timeframe.M1, JAN + timedelta(minutes=10), JAN + timedelta(minutes=20)
    )
    assert len(part) == 10 and part.index[0] == JAN + timedelta(minutes=10)


def test_store_merge_new_rows_win_and_coverage_unions(store):
    idx = pd.DatetimeIndex(["2025-01-01 00:00", "2025-01-01 00:01"], tz="UTC", name="open_at")
    one = pd.DataFrame({k: [1.0, 2.0] for k in ("open", "high", "low", "close", "volume")}, index=idx)
    two = pd.DataFrame(
        {k: [5.0] for k in ("open", "high", "low", "close", "volume")}, index=idx[1:] + pd.Timedelta(0)
    )
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    store.write("p", "K", Timeframe.M1, one, [(t0, t0 + timedelta(minutes=2))])
    store.write("p", "K", Timeframe.M1, two, [(t0 + timedelta(minutes=2), t0 + timedelta(minutes=5))])
    back = store.read("p", "K", Timeframe.M1, t0, t0 + timedelta(hours=1))
    assert back["close"].tolist() == [1.0, 5.0]
    assert store.coverage("p", "K", Timeframe.M1) == [(t0, t0 + timedelta(minutes=5))]
    assert np.float64 == back["open"].dtype
