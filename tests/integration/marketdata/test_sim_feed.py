from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from md_constants import HOLIDAYS, NOW

from quantdesk.adapters.feeds.reference_data import reference_prices
from quantdesk.adapters.feeds.sim import SimFeed
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe

START = datetime(2025, 10, 15, tzinfo=UTC)


def aggregate(frame: pd.DataFrame, groups) -> pd.DataFrame:
    g = frame.groupby(groups, sort=True)
    return pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
        }
    )


def test_sim_same_request_gives_identical_frames_across_instances(catalog, sessions, clock, sim):
    other = SimFeed(catalog.all(), seed=7, sessions=sessions, reference_prices=reference_prices(), now=clock)
    for symbol, tf in (("BTCUSDT", Timeframe.M1), ("RELIANCE", Timeframe.M5), ("ETHUSDT", Timeframe.D1)):
        instrument = catalog.resolve(symbol)
        first = sim.history(instrument, tf, START, NOW)
        pd.testing.assert_frame_equal(first, sim.history(instrument, tf, START, NOW))
        pd.testing.assert_frame_equal(first, other.history(instrument, tf, START, NOW))


def test_sim_different_seed_differs(catalog, sessions, clock, sim):
    other = SimFeed(catalog.all(), seed=8, sessions=sessions, reference_prices=reference_prices(), now=clock)
    btc = catalog.resolve("BTCUSDT")
    assert not sim.history(btc, Timeframe.H1, START, NOW)["close"].equals(
        other.history(btc, Timeframe.H1, START, NOW)["close"]
    )


def test_sim_result_does_not_depend_on_how_range_is_split(catalog, sim):
    btc = catalog.resolve("BTCUSDT")
    mid = datetime(2025, 10, 20, 7, 13, tzinfo=UTC)
    whole = sim.history(btc, Timeframe.M15, START, NOW)
    parts = pd.concat(
        [sim.history(btc, Timeframe.M15, START, mid), sim.history(btc, Timeframe.M15, mid, NOW)]
    )
    pd.testing.assert_frame_equal(whole, parts)


def test_sim_frame_shape(catalog, sim):
    frame = sim.history(catalog.resolve("SOLUSDT"), Timeframe.H4, START, NOW)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dt == np.float64 for dt in frame.dtypes)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.index.hour % 4 == 0).all()


def test_sim_crypto_daily_is_exact_aggregate_of_hourly_and_minutes(catalog, sim):
    btc = catalog.resolve("BTC/USDT")
    daily = sim.history(btc, Timeframe.D1, START, NOW)
    hourly = sim.history(btc, Timeframe.H1, START, NOW)
    minutes = sim.history(btc, Timeframe.M1, START, NOW)
    hourly_full_days = hourly[hourly.index < daily.index[-1] + timedelta(days=1)]
    from_hours = aggregate(hourly_full_days, hourly_full_days.index.floor("D"))
    from_hours.index.name = "open_at"
    pd.testing.assert_frame_equal(daily, from_hours, check_exact=True, check_freq=False)
    from_minutes = aggregate(minutes, minutes.index.floor("h"))
    from_minutes.index.name = "open_at"
    pd.testing.assert_frame_equal(hourly, from_minutes.loc[hourly.index], check_exact=True, check_freq=False)
    assert daily.index[0] == START and (daily.index.hour == 0).all()


def test_sim_nse_bars_only_inside_sessions_never_on_holidays(catalog, sessions, sim):
    rules = sessions[catalog.resolve("RELIANCE").id.venue]
    frame = sim.history(catalog.resolve("RELIANCE"), Timeframe.M1, START, NOW)
    assert len(frame)
    assert all(rules.is_open(at.to_pydatetime()) for at in frame.index)
    local_days = {at.to_pydatetime().astimezone(rules.tz).date() for at in frame.index}
    assert not local_days & HOLIDAYS
    per_day = pd.Series(frame.index.tz_convert("Asia/Kolkata").date).value_counts()
    assert (per_day == 375).all()
    daily = sim.history(catalog.resolve("RELIANCE"), Timeframe.D1, START, NOW)
    assert sorted(local_days) == [at.to_pydatetime().astimezone(rules.tz).date() for at in daily.index]


def test_sim_nse_daily_and_hourly_are_exact_aggregates_of_minutes(catalog, sim):
    rel = catalog.resolve("RELIANCE")
    minutes = sim.history(rel, Timeframe.M1, START, NOW)
    session_day = minutes.index.tz_convert("Asia/Kolkata").date
    daily = sim.history(rel, Timeframe.D1, START, NOW)
    agg = aggregate(minutes, session_day)
    np.testing.assert_array_equal(daily.to_numpy(), agg.to_numpy())
    hourly = sim.history(rel, Timeframe.H1, START, NOW)
    offset = (minutes.index - minutes.index.normalize() - pd.Timedelta(hours=3, minutes=45)) // pd.Timedelta(
        hours=1
    )
    by_hour = aggregate(minutes, [session_day, offset])
    np.testing.assert_array_equal(hourly.to_numpy(), by_hour.to_numpy())
    assert (hourly.index.tz_convert("Asia/Kolkata").minute == 15).all()


def test_sim_nse_has_overnight_gaps_and_u_shaped_volume(catalog, sim):
    rel = catalog.resolve("RELIANCE")
    daily = sim.history(rel, Timeframe.D1, datetime(2025, 1, 1, tzinfo=UTC), NOW)
    gaps = daily["open"].to_numpy()[1:] - daily["close"].to_numpy()[:-1]
    assert (gaps != 0).mean() > 0.8
    minutes = sim.history(rel, Timeframe.M1, START, NOW)
    minute_of_day = (minutes.index - minutes.index.normalize()).total_seconds() // 60 - 225
    volume = minutes["volume"].groupby(minute_of_day).mean()
    assert volume.iloc[:15].mean() > 1.5 * volume.iloc[150:225].mean()
    assert volume.iloc[-15:].mean() > 1.5 * volume.iloc[150:225].mean()


def test_sim_bars_are_valid_and_crypto_is_continuous(catalog, sim):
    frame = sim.history(catalog.resolve("DOGEUSDT"), Timeframe.M1, START, NOW)
    o, h, lo, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (lo > 0).all()
    assert (v >= 0).all() and (v == np.floor(v)).all()
    np.testing.assert_array_equal(o[1:], c[:-1])


def test_sim_price_levels_are_plausible(catalog, sim):
    since = datetime(2024, 11, 1, tzinfo=UTC)
    btc = sim.history(catalog.resolve("BTCUSDT"), Timeframe.D1, since, NOW)["close"]
    rel = sim.history(catalog.resolve("RELIANCE"), Timeframe.D1, since, NOW)["close"]
    assert 15_000 < btc.median() < 240_000
    assert 800 < rel.median() < 8_000


def test_sim_returns_are_fat_tailed_and_volatility_clusters(catalog, sim):
    daily = sim.history(catalog.resolve("ETHUSDT"), Timeframe.D1, datetime(2015, 1, 1, tzinfo=UTC), NOW)
    r = np.diff(np.log(daily["close"].to_numpy()))
    excess_kurtosis = ((r - r.mean()) ** 4).mean() / r.var() ** 2 - 3
    assert excess_kurtosis > 0.5
    a = np.abs(r - r.mean())
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.05


def test_sim_never_returns_unclosed_bar_and_moves_with_clock(catalog, clock, sim):
    btc = catalog.resolve("BTCUSDT")
    frame = sim.history(btc, Timeframe.M1, NOW - timedelta(hours=2), NOW + timedelta(days=1))
    assert frame.index[-1] == datetime(
        2025, 11, 5, 12, 33, tzinfo=UTC
    )  # 12:33-12:34 closed; 12:34 still open
    hourly = sim.history(btc, Timeframe.H1, NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert hourly.index[-1] == datetime(2025, 11, 5, 11, tzinfo=UTC)
    assert sim.history(btc, Timeframe.D1, NOW - timedelta(days=3), NOW).index[-1] == datetime(
        2025, 11, 4, tzinfo=UTC
    )
    clock.at = NOW + timedelta(minutes=30)
    later = sim.history(btc, Timeframe.M1, NOW - timedelta(hours=2), NOW + timedelta(days=1))
    assert later.index[-1] == datetime(2025, 11, 5, 13, 3, tzinfo=UTC)
    pd.testing.assert_frame_equal(later.loc[frame.index], frame)


def test_sim_nse_daily_bar_appears_only_after_session_close(catalog, clock, sim):
    tcs = catalog.resolve("TCS")
    day_open = datetime(2025, 11, 4, 3, 45, tzinfo=UTC)
    clock.at = datetime(2025, 11, 4, 9, 0, tzinfo=UTC)  # during the session
    assert day_open not in sim.history(tcs, Timeframe.D1, START, clock.at + timedelta(days=1)).index
    clock.at = datetime(2025, 11, 4, 10, 0, tzinfo=UTC)  # at the close
    assert sim.history(tcs, Timeframe.D1, START, clock.at).index[-1] == day_open


def test_sim_rejects_start_after_end(catalog, sim):
    with pytest.raises(InvalidInputError) as err:
        sim.history(catalog.resolve("BTCUSDT"), Timeframe.M1, NOW, START)
    assert err.value.field == "start"
