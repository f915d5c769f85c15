import numpy as np
import pandas as pd
import pytest
import talib
from backtesting.test import GOOG

from quantdesk.analytics import indicators as ind

CLOSE = GOOG["Close"].to_numpy(dtype=np.float64)
HIGH = GOOG["High"].to_numpy(dtype=np.float64)
LOW = GOOG["Low"].to_numpy(dtype=np.float64)
VOLUME = GOOG["Volume"].to_numpy(dtype=np.float64)
TOL = 1e-9


def batch(x: np.ndarray) -> np.ndarray:
    """Three rows: the series, a scaled copy, and the series with 40 leading NaNs (shorter history)."""
    late = x.copy()
    late[:40] = np.nan
    return np.vstack([x, x * 1.7 + 3.0, late])


def assert_same(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))  # warm-up NaNs identical
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL, equal_nan=True)


@pytest.mark.parametrize("engine", ["auto", "numba"])
@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_1d_matches_talib_on_goog(engine, period):
    assert_same(ind.rsi(CLOSE, period, engine=engine), talib.RSI(CLOSE, timeperiod=period))


@pytest.mark.parametrize("engine", ["auto", "talib"])
def test_rsi_2d_rows_match_talib_on_goog(engine):
    x = batch(CLOSE)
    out = ind.rsi(x, 14, engine=engine)
    assert out.shape == x.shape
    for row in range(x.shape[0]):
        assert_same(out[row], talib.RSI(x[row], timeperiod=14))


@pytest.mark.parametrize("engine", ["auto", "numba"])
def test_macd_1d_matches_talib_on_goog(engine):
    for actual, expected in zip(ind.macd(CLOSE, engine=engine), talib.MACD(CLOSE, 12, 26, 9), strict=True):
        assert_same(actual, expected)


@pytest.mark.parametrize("params", [(12, 26, 9), (5, 35, 5), (26, 12, 9)])
def test_macd_2d_rows_match_talib_on_goog(params):
    x = batch(CLOSE)
    fast, slow, signal = params
    outs = ind.macd(x, fast, slow, signal)
    for row in range(x.shape[0]):
        expected = talib.MACD(x[row], fastperiod=fast, slowperiod=slow, signalperiod=signal)
        for actual, exp in zip(outs, expected, strict=True):
            assert_same(actual[row], exp)


@pytest.mark.parametrize("period", [1, 10, 50])
def test_ema_and_sma_2d_match_talib(period):
    x = batch(CLOSE)
    ema, sma = ind.ema(x, period), ind.sma(x, period)
    for row in range(x.shape[0]):
        assert_same(ema[row], talib.EMA(x[row], timeperiod=period))
        assert_same(sma[row], talib.SMA(x[row], timeperiod=period))


def test_atr_1d_and_2d_match_talib_on_goog():
    assert_same(ind.atr(HIGH, LOW, CLOSE, 14), talib.ATR(HIGH, LOW, CLOSE, timeperiod=14))
    assert_same(ind.atr(HIGH, LOW, CLOSE, 14, engine="numba"), talib.ATR(HIGH, LOW, CLOSE, timeperiod=14))
    h, lo, c = batch(HIGH), batch(LOW), batch(CLOSE)
    out = ind.atr(h, lo, c, 14)
    for row in range(3):
        assert_same(out[row], talib.ATR(h[row], lo[row], c[row], timeperiod=14))


def test_atr_pct_is_atr_over_close_in_percent():
    out = ind.atr_pct(HIGH, LOW, CLOSE, 14)
    assert_same(out, 100 * talib.ATR(HIGH, LOW, CLOSE, timeperiod=14) / CLOSE)


def test_series_input_returns_series_on_same_index():
    out = ind.rsi(GOOG["Close"], 14)
    assert isinstance(out, pd.Series)
    assert out.index.equals(GOOG.index)


def test_volume_surge_compares_with_mean_of_previous_bars():
    v = np.array([10.0, 10, 10, 10, 40, 10])
    out = ind.volume_surge(v, 4)
    assert np.isnan(out[:4]).all()
    assert out[4] == pytest.approx(4.0)
    assert out[5] == pytest.approx(10 / 17.5)
    surge2d = ind.volume_surge(np.vstack([VOLUME, VOLUME * 2]), 20)
    np.testing.assert_allclose(surge2d[0], surge2d[1], equal_nan=True)
    expected = VOLUME[20:] / pd.Series(VOLUME).rolling(20).mean().to_numpy()[19:-1]
    np.testing.assert_allclose(surge2d[0, 20:], expected, rtol=1e-12)


def test_vwap_cumulative_and_reset_per_session():
    h = np.array([11.0, 12, 13, 14])
    lo = np.array([9.0, 10, 11, 12])
    c = np.array([10.0, 11, 12, 13])
    v = np.array([1.0, 3, 2, 2])
    out = ind.vwap(h, lo, c, v)
    assert out[1] == pytest.approx((10 * 1 + 11 * 3) / 4)
    reset = np.array([True, False, True, False])
    out = ind.vwap(h, lo, c, v, reset)
    assert out[2] == pytest.approx(12.0)
    assert out[3] == pytest.approx((12 * 2 + 13 * 2) / 4)
    both = ind.vwap(np.vstack([h, h]), np.vstack([lo, lo]), np.vstack([c, c]), np.vstack([v, v]), reset)
    np.testing.assert_allclose(both[1], out)


def test_session_starts_marks_first_bar_of_each_local_day():
    index = pd.DatetimeIndex(["2025-01-01 03:45", "2025-01-01 09:59", "2025-01-02 03:45"], tz="UTC")
    assert ind.session_starts(index, "Asia/Kolkata").tolist() == [True, False, True]


def test_donchian_matches_talib_max_min_and_excludes_current_on_request():
    upper, lower, middle = ind.donchian(HIGH, LOW, 20)
    assert_same(upper, talib.MAX(HIGH, timeperiod=20))
    assert_same(lower, talib.MIN(LOW, timeperiod=20))
    assert_same(middle, (upper + lower) / 2)
    prev_upper, _, _ = ind.donchian(np.vstack([HIGH, HIGH]), np.vstack([LOW, LOW]), 20, exclude_current=True)
    assert_same(prev_upper[1, 1:], upper[:-1])
    assert np.isnan(prev_upper[:, 0]).all()


def test_bad_period_is_refused():
    with pytest.raises(ValueError):
        ind.rsi(CLOSE, 1)
