"""Technical indicators over one series or a batch of series.

Every function takes either a 1-D series (NumPy array or pandas Series; a Series comes back
as a Series on the same index) or a 2-D float64 batch shaped ``(n_symbols, n_bars)``, one row
per symbol, and returns the same shape. The 1-D path calls TA-Lib; the 2-D path runs
Numba kernels that replay TA-Lib's own recursions (same seeding, same warm-up NaNs, values
equal to about 1e-12), row by row in compiled code. ``engine="talib"`` forces a per-row
TA-Lib loop for a batch and ``engine="numba"`` the kernels for a single series.

Leading NaNs of a row (a symbol with shorter history) are skipped as TA-Lib's Python
wrapper does: the warm-up starts at the first valid value.

Indicators TA-Lib lacks: :func:`volume_surge`, :func:`atr_pct`, :func:`vwap`,
:func:`donchian`.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import pandas as pd
import talib

Engine = Literal["auto", "talib", "numba"]

_ZERO = 1e-14  # TA-Lib's TA_IS_ZERO threshold


# ---- shape handling ---------------------------------------------------------------------
def _prepare(*arrays) -> tuple[list[np.ndarray], pd.Index | None, str | None]:
    index = name = None
    out = []
    for a in arrays:
        if isinstance(a, pd.Series):
            index, name = a.index, a.name
        arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        if arr.ndim not in (1, 2):
            raise ValueError(f"expected a 1-D series or a 2-D (n_symbols, n_bars) batch, got {arr.ndim}-D")
        out.append(arr)
    if any(a.shape != out[0].shape for a in out):
        raise ValueError(f"inputs differ in shape: {[a.shape for a in out]}")
    return out, index, name


def _wrap(result: np.ndarray, index, name):
    if index is not None and result.ndim == 1:
        return pd.Series(result, index=index, name=name)
    return result


def _use_kernel(arr: np.ndarray, engine: Engine) -> bool:
    if engine not in ("auto", "talib", "numba"):
        raise ValueError(f"engine {engine!r} must be auto, talib or numba")
    return engine == "numba" or (engine == "auto" and arr.ndim == 2)


def _check_period(period: int, name: str = "period", minimum: int = 2) -> int:
    if int(period) != period or period < minimum:
        raise ValueError(f"{name} {period!r} must be a whole number of at least {minimum}")
    return int(period)


# ---- Numba kernels (one row each; drivers loop rows) --------------------------------------
@numba.njit(cache=True)
def _first_valid(x):
    for i in range(x.shape[0]):
        if not np.isnan(x[i]):
            return i
    return x.shape[0]


@numba.njit(cache=True)
def _first_valid3(a, b, c):
    for i in range(a.shape[0]):
        if not (np.isnan(a[i]) or np.isnan(b[i]) or np.isnan(c[i])):
            return i
    return a.shape[0]


@numba.njit(cache=True)
def _rsi_row(x, period, out):
    n = x.shape[0]
    s = _first_valid(x)
    if n - s <= period:
        return
    prev = x[s]
    gain = 0.0
    loss = 0.0
    today = s + 1
    for _ in range(period):
        value = x[today]
        diff = value - prev
        prev = value
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        today += 1
    loss /= period
    gain /= period
    total = gain + loss
    out[today - 1] = 100.0 * (gain / total) if not (-_ZERO < total < _ZERO) else 0.0
    while today < n:
        value = x[today]
        diff = value - prev
        prev = value
        loss *= period - 1
        gain *= period - 1
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        loss /= period
        gain /= period
        total = gain + loss
        out[today] = 100.0 * (gain / total) if not (-_ZERO < total < _ZERO) else 0.0
        today += 1


@numba.njit(cache=True)
def _ema_from(x, period, k, seed_end, out):
    # TA-Lib INT_EMA: seed = SMA of the `period` values ending at seed_end, then the recursion.
    total = 0.0
    for i in range(seed_end - period + 1, seed_end + 1):
        total += x[i]
    prev = total / period
    out[seed_end] = prev
    for i in range(seed_end + 1, x.shape[0]):
        prev = ((x[i] - prev) * k) + prev
        out[i] = prev


@numba.njit(cache=True)
def _ema_row(x, period, out):
    s = _first_valid(x)
    if x.shape[0] - s < period:
        return
    _ema_from(x, period, 2.0 / (period + 1), s + period - 1, out)


@numba.njit(cache=True)
def _sma_row(x, period, out):
    n = x.shape[0]
    s = _first_valid(x)
    if n - s < period:
        return
    total = 0.0
    for i in range(s, s + period - 1):
        total += x[i]
    trailing = s
    for i in range(s + period - 1, n):
        total += x[i]
        value = total
        total -= x[trailing]
        trailing += 1
        out[i] = value / period


@numba.njit(cache=True)
def _macd_row(x, fast, slow, signal, out_macd, out_signal, out_hist):
    n = x.shape[0]
    s = _first_valid(x)
    first_line = s + slow - 1  # where TA-Lib starts both EMAs of the MACD line
    first_out = first_line + signal - 1
    if n <= first_out:
        return
    slow_ema = np.full(n, np.nan)
    fast_ema = np.full(n, np.nan)
    _ema_from(x, slow, 2.0 / (slow + 1), first_line, slow_ema)
    _ema_from(x, fast, 2.0 / (fast + 1), first_line, fast_ema)
    line = fast_ema - slow_ema
    sig = np.full(n, np.nan)
    _ema_from(line, signal, 2.0 / (signal + 1), first_out, sig)
    for i in range(first_out, n):
        out_macd[i] = line[i]
        out_signal[i] = sig[i]
        out_hist[i] = line[i] - sig[i]


@numba.njit(cache=True)
def _atr_row(high, low, close, period, out):
    n = high.shape[0]
    s = _first_valid3(high, low, close)
    if n - s <= period:
        return
    total = 0.0
    for i in range(s + 1, s + period + 1):
        total += _true_range(high[i], low[i], close[i - 1])
    prev = total / period
    out[s + period] = prev
    for i in range(s + period + 1, n):
        prev *= period - 1
        prev += _true_range(high[i], low[i], close[i - 1])
        prev /= period
        out[i] = prev


@numba.njit(cache=True)
def _true_range(high, low, prev_close):
    greatest = high - low
    up = abs(prev_close - high)
    if up > greatest:
        greatest = up
    down = abs(prev_close - low)
    if down > greatest:
        greatest = down
    return greatest


@numba.njit(cache=True)
def _rsi_batch(x, period):
    out = np.full(x.shape, np.nan)
    for r in range(x.shape[0]):
        _rsi_row(x[r], period, out[r])
    return out


@numba.njit(cache=True)
def _ema_batch(x, period):
    out = np.full(x.shape, np.nan)
    for r in range(x.shape[0]):
        _ema_row(x[r], period, out[r])
    return out


@numba.njit(cache=True)
def _sma_batch(x, period):
    out = np.full(x.shape, np.nan)
    for r in range(x.shape[0]):
        _sma_row(x[r], period, out[r])
    return out


@numba.njit(cache=True)
def _macd_batch(x, fast, slow, signal):
    m = np.full(x.shape, np.nan)
    s = np.full(x.shape, np.nan)
    h = np.full(x.shape, np.nan)
    for r in range(x.shape[0]):
        _macd_row(x[r], fast, slow, signal, m[r], s[r], h[r])
    return m, s, h


@numba.njit(cache=True)
def _atr_batch(high, low, close, period):
    out = np.full(high.shape, np.nan)
    for r in range(high.shape[0]):
        _atr_row(high[r], low[r], close[r], period, out[r])
    return out


@numba.njit(cache=True)
def _vwap_batch(high, low, close, volume, reset):
    out = np.full(high.shape, np.nan)
    for r in range(high.shape[0]):
        pv = 0.0
        vol = 0.0
        for i in range(high.shape[1]):
            if reset[r, i]:
                pv = 0.0
                vol = 0.0
            v = volume[r, i]
            tp = (high[r, i] + low[r, i] + close[r, i]) / 3.0
            if not (np.isnan(v) or np.isnan(tp)):
                pv += tp * v
                vol += v
            if vol > 0:
                out[r, i] = pv / vol
    return out


def _as2d(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 2 else arr[None, :]


def _back(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    return result if like.ndim == 2 else result[0]


def _rows(fn, arrays: list[np.ndarray], *args):
    """Apply a TA-Lib function to each row; returns one array (or a tuple) in the batch's shape."""
    if arrays[0].ndim == 1:
        return fn(*arrays, *args)
    results = [fn(*(a[r] for a in arrays), *args) for r in range(arrays[0].shape[0])]
    if isinstance(results[0], tuple):
        return tuple(np.vstack(parts) for parts in zip(*results, strict=True))
    return np.vstack(results)


# ---- public API -------------------------------------------------------------------------
def rsi(close, period: int = 14, *, engine: Engine = "auto"):
    """Wilder's RSI (TA-Lib ``RSI``); the first ``period`` values of a row are NaN."""
    (x,), index, name = _prepare(close)
    period = _check_period(period)
    if _use_kernel(x, engine):
        result = _back(_rsi_batch(_as2d(x), period), x)
    else:
        result = _rows(lambda a: talib.RSI(a, timeperiod=period), [x])
    return _wrap(result, index, name)


def ema(close, period: int = 20, *, engine: Engine = "auto"):
    """Exponential moving average seeded with the simple average of the first ``period`` values (TA-Lib ``EMA``)."""
    (x,), index, name = _prepare(close)
    period = _check_period(period, minimum=1)
    if _use_kernel(x, engine):
        result = _back(_ema_batch(_as2d(x), period), x)
    else:
        result = _rows(lambda a: talib.EMA(a, timeperiod=period), [x])
    return _wrap(result, index, name)


def sma(close, period: int = 20, *, engine: Engine = "auto"):
    """Simple moving average (TA-Lib ``SMA``)."""
    (x,), index, name = _prepare(close)
    period = _check_period(period, minimum=1)
    if _use_kernel(x, engine):
        result = _back(_sma_batch(_as2d(x), period), x)
    else:
        result = _rows(lambda a: talib.SMA(a, timeperiod=period), [x])
    return _wrap(result, index, name)


def macd(close, fast: int = 12, slow: int = 26, signal: int = 9, *, engine: Engine = "auto"):
    """MACD line, signal line and histogram (TA-Lib ``MACD``: both EMAs seeded where the slow one starts).

    The first ``slow + signal - 2`` values of each output are NaN.
    """
    (x,), index, name = _prepare(close)
    fast, slow, signal = (
        _check_period(fast, "fast"),
        _check_period(slow, "slow"),
        _check_period(signal, "signal", 1),
    )
    if slow < fast:
        fast, slow = slow, fast  # TA-Lib swaps them too
    if _use_kernel(x, engine):
        m, s, h = (_back(r, x) for r in _macd_batch(_as2d(x), fast, slow, signal))
    else:
        m, s, h = _rows(lambda a: talib.MACD(a, fastperiod=fast, slowperiod=slow, signalperiod=signal), [x])
    return _wrap(m, index, name), _wrap(s, index, name), _wrap(h, index, name)


def atr(high, low, close, period: int = 14, *, engine: Engine = "auto"):
    """Average true range with Wilder smoothing (TA-Lib ``ATR``), in price units."""
    (h, lo, c), index, name = _prepare(high, low, close)
    period = _check_period(period)
    if _use_kernel(h, engine):
        result = _back(_atr_batch(_as2d(h), _as2d(lo), _as2d(c), period), h)
    else:
        result = _rows(lambda a, b, d: talib.ATR(a, b, d, timeperiod=period), [h, lo, c])
    return _wrap(result, index, name)


def atr_pct(high, low, close, period: int = 14, *, engine: Engine = "auto"):
    """ATR as a percentage of the close (``100 * ATR / close``)."""
    (h, lo, c), index, name = _prepare(high, low, close)
    value = np.asarray(atr(h, lo, c, period, engine=engine))
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(c != 0, 100.0 * value / c, np.nan)
    return _wrap(result, index, name)


def volume_surge(volume, period: int = 20, *, engine: Engine = "auto"):
    """Volume divided by the mean volume of the ``period`` bars *before* it.

    1.0 means ordinary volume, 3.0 three times the recent average. The first ``period``
    values are NaN, as is any bar whose reference average is zero.
    """
    (v,), index, name = _prepare(volume)
    period = _check_period(period, minimum=1)
    mean = np.asarray(sma(v, period, engine=engine))
    reference = np.full_like(v, np.nan)
    reference[..., 1:] = mean[..., :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(reference > 0, v / reference, np.nan)
    return _wrap(result, index, name)


def vwap(high, low, close, volume, reset=None):
    """Volume-weighted average of the typical price ``(high + low + close) / 3``, cumulative.

    ``reset`` (bool, same shape, or 1-D per bar for a batch) marks bars that start a new
    session; :func:`session_starts` builds it from a DatetimeIndex. Before any volume the
    value is NaN; bars with NaN inputs are skipped.
    """
    (h, lo, c, v), index, name = _prepare(high, low, close, volume)
    if reset is None:
        mask = np.zeros(h.shape, dtype=np.bool_)
    else:
        mask = np.broadcast_to(np.asarray(reset, dtype=np.bool_), h.shape)
    result = _back(_vwap_batch(_as2d(h), _as2d(lo), _as2d(c), _as2d(v), np.ascontiguousarray(_as2d(mask))), h)
    return _wrap(result, index, name)


def session_starts(index: pd.DatetimeIndex, tz: str = "UTC") -> np.ndarray:
    """Bool mask, True at the first bar of each calendar day in ``tz`` (for :func:`vwap` resets)."""
    local = index.tz_convert(tz) if index.tz is not None else index.tz_localize("UTC").tz_convert(tz)
    days = local.normalize().asi8
    out = np.ones(len(days), dtype=np.bool_)
    out[1:] = days[1:] != days[:-1]
    return out


def donchian(high, low, period: int = 20, *, exclude_current: bool = False):
    """Donchian channel: (upper, lower, middle) = highest high, lowest low and their midpoint over ``period`` bars.

    Includes the current bar like TA-Lib ``MAX``/``MIN``; ``exclude_current=True`` uses the
    ``period`` bars before it, which is what a breakout signal compares the close against.
    """
    (h, lo), index, name = _prepare(high, low)
    period = _check_period(period, minimum=1)
    upper = np.full_like(h, np.nan)
    lower = np.full_like(lo, np.nan)
    if h.shape[-1] >= period:
        windows_h = np.lib.stride_tricks.sliding_window_view(h, period, axis=-1)
        windows_l = np.lib.stride_tricks.sliding_window_view(lo, period, axis=-1)
        upper[..., period - 1 :] = windows_h.max(axis=-1)
        lower[..., period - 1 :] = windows_l.min(axis=-1)
    if exclude_current:
        upper = np.concatenate([np.full(h.shape[:-1] + (1,), np.nan), upper[..., :-1]], axis=-1)
        lower = np.concatenate([np.full(lo.shape[:-1] + (1,), np.nan), lower[..., :-1]], axis=-1)
    middle = (upper + lower) / 2.0
    return _wrap(upper, index, name), _wrap(lower, index, name), _wrap(middle, index, name)
