"""Read one year of 1m bars for one symbol from the Parquet cache; baseline: pandas.read_csv of the same bars.

Run: .venv/bin/python bench/bench_bars.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.feeds.reference_data import builtin_instruments, reference_prices
from quantdesk.adapters.feeds.sim import SimFeed
from quantdesk.core.market import Timeframe
from quantdesk.services.catalog import InstrumentCatalog
from quantdesk.services.marketdata import MarketDataService

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), result


def main() -> None:
    catalog = InstrumentCatalog(builtin_instruments())
    btc = catalog.resolve("BTCUSDT")
    sim = SimFeed(catalog.all(), reference_prices=reference_prices(), now=lambda: END)
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetBarStore(Path(tmp) / "bars")
        service = MarketDataService(catalog, store, {"sim": sim}, clock=lambda: END)
        t0 = time.perf_counter()
        frame = service.history(btc, Timeframe.M1, START, END)  # generates and caches
        fill_s = time.perf_counter() - t0
        csv_path = Path(tmp) / "btc_1m.csv"
        frame.to_csv(csv_path)
        print(f"rows: {len(frame):,}  (simulate + cache fill: {fill_s:.2f} s)")

        store_ms, cached = timed(lambda: store.read("sim", btc.id.key, Timeframe.M1, START, END), 15)
        service_ms, _ = timed(lambda: service.history(btc, Timeframe.M1, START, END), 15)
        csv_ms, from_csv = timed(lambda: pd.read_csv(csv_path, index_col=0, parse_dates=[0]), 3)
        assert len(cached) == len(from_csv) == len(frame) == 525_600
        pd.testing.assert_frame_equal(cached, frame)

    print(f"ParquetBarStore.read            {store_ms:8.1f} ms  (target < 50 ms)")
    print(f"MarketDataService.history (hit) {service_ms:8.1f} ms")
    print(f"pandas.read_csv baseline        {csv_ms:8.1f} ms")
    print(f"speed-up vs read_csv            {csv_ms / store_ms:8.1f} x")


if __name__ == "__main__":
    main()
