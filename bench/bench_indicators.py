"""RSI(14) + MACD(12, 26, 9) over 2,000 symbols x 250 daily bars: one 2-D batch vs a per-symbol pandas loop.

Run: .venv/bin/python bench/bench_indicators.py   (target: batch >= 50x faster than the pandas loop)
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from quantdesk.analytics import indicators as ind

N_SYMBOLS, N_BARS = 2_000, 250


def pandas_rsi(close: pd.Series, period: int = 14) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / period, adjust=False, min_periods=period).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / period, adjust=False, min_periods=period).mean()
    return 100 - 100 / (1 + gain / loss)


def pandas_macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9):
    line = close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()
    sig = line.ewm(span=signal, adjust=False).mean()
    return line, sig, line - sig


def pandas_loop(frame: pd.DataFrame) -> None:
    for symbol in frame.columns:
        close = frame[symbol]
        pandas_rsi(close)
        pandas_macd(close)


def batch(x: np.ndarray, engine: str) -> None:
    ind.rsi(x, 14, engine=engine)
    ind.macd(x, 12, 26, 9, engine=engine)


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    rng = np.random.default_rng(42)
    closes = 100 * np.exp(np.cumsum(rng.standard_t(4, (N_SYMBOLS, N_BARS)) * 0.015, axis=1))
    frame = pd.DataFrame(closes.T, columns=[f"S{i}" for i in range(N_SYMBOLS)])
    batch(closes[:2], "numba")  # compile (or load the cached) kernels before timing

    numba_ms = timed(lambda: batch(closes, "numba"), 20)
    talib_ms = timed(lambda: batch(closes, "talib"), 10)
    pandas_ms = timed(lambda: pandas_loop(frame), 3)
    print(f"{N_SYMBOLS} symbols x {N_BARS} bars, RSI(14) + MACD(12,26,9)")
    print(f"2-D batch, numba kernels      {numba_ms:9.1f} ms")
    print(f"2-D batch, TA-Lib row loop    {talib_ms:9.1f} ms")
    print(f"per-symbol pandas loop        {pandas_ms:9.1f} ms")
    print(f"speed-up numba vs pandas      {pandas_ms / numba_ms:9.1f} x  (target >= 50x)")
    print(f"speed-up TA-Lib loop vs pandas {pandas_ms / talib_ms:8.1f} x")


if __name__ == "__main__":
    main()
