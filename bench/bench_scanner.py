"""Benchmark: the example MACD-crossover scanner over 2,000 symbols x 250 daily bars.

Runs it through the sandboxed ScannerRunner (cold start reported separately, then warm scans
from DataFrames and from pre-packed ScanBars) and, as the baseline, a sequential in-process
loop computing a pandas ewm-based MACD over each symbol's DataFrame.

    .venv/bin/python bench/bench_scanner.py [--symbols 2000] [--bars 250] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from quantdesk.adapters.sandbox.scanner_runner import ScannerRunner
from quantdesk.services.scanner_code import EXAMPLE_SCANNERS, ScanBars


def random_walk_frames(symbols: int, bars: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=bars, freq="D", tz="UTC")
    frames = {}
    for i in range(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, bars)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 0.01, bars)) * close
        frames[f"SYM{i:04d}"] = pd.DataFrame({
            "open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread,
            "close": close, "volume": rng.uniform(1e5, 1e6, bars).round(),
        }, index=index)
    return frames


def baseline(frames: dict[str, pd.DataFrame], fast: int = 12, slow: int = 26, signal_period: int = 9) -> dict:
    """Sequential, in-process: pandas ewm MACD per symbol, the same crossover rule."""
    out = {}
    for symbol, df in frames.items():
        close = df["close"]
        macd = close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()
        hist = macd - macd.ewm(span=signal_period, adjust=False).mean()
        signal = None
        if hist.iloc[-2] <= 0 < hist.iloc[-1]:
            signal = "BUY"
        elif hist.iloc[-2] >= 0 > hist.iloc[-1]:
            signal = "SELL"
        out[symbol] = signal
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    frames = random_walk_frames(args.symbols, args.bars)
    scanner = EXAMPLE_SCANNERS["macd_crossover"]
    print(f"{args.symbols} symbols x {args.bars} bars, {args.workers} workers")

    with ScannerRunner(workers=args.workers) as runner:
        t0 = time.perf_counter()
        runner.start(wait=True)
        cold = time.perf_counter() - t0
        print(f"cold start (spawn, import, lock down):  {cold:7.3f} s")

        warm_frames, warm_packed, results = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results = runner.run(scanner["code"], scanner["parameters"], frames)
            warm_frames.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            runner.run(scanner["code"], scanner["parameters"], ScanBars.from_frames(frames))
            warm_packed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        packed = ScanBars.from_frames(frames)
        pack_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner.run(scanner["code"], scanner["parameters"], packed)
        run_only = time.perf_counter() - t0

    errors = [r for r in results if r.error]
    signals = sum(1 for r in results if r.signal)
    t0 = time.perf_counter()
    expected = baseline(frames)
    base = time.perf_counter() - t0
    agree = sum(1 for r in results if r.signal == expected[r.symbol])

    best = min(warm_frames)
    print(f"sandboxed scan, warm, from DataFrames:  {best:7.3f} s  (runs: {', '.join(f'{x:.3f}' for x in warm_frames)})")
    print(f"  of which packing the DataFrames:      {pack_s:7.3f} s;  scan of pre-packed bars {run_only:.3f} s")
    print(f"baseline, in-process pandas ewm loop:   {base:7.3f} s")
    print(f"speed-up (baseline / sandboxed warm):   {base / best:7.2f} x")
    print(f"signals found {signals}, errors {len(errors)}, agreement with baseline {agree}/{len(results)}")


if __name__ == "__main__":
    main()
