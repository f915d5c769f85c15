"""The Parquet store keeps small parsed series in memory, yet every read sees the files as they are."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.core.market import Timeframe

T0 = datetime(2025, 1, 6, tzinfo=UTC)


def _bars(days: int, close: float) -> pd.DataFrame:
    index = pd.DatetimeIndex([T0 + timedelta(days=d) for d in range(days)], name="open_at")
    return pd.DataFrame({c: np.full(days, close) for c in ("open", "high", "low", "close", "volume")}, index=index)


def test_store_read_sees_another_writers_replacement(tmp_path):
    reader, writer = ParquetBarStore(tmp_path), ParquetBarStore(tmp_path)  # e.g. two processes
    writer.write("sim", "NSE:X", Timeframe.D1, _bars(3, 1.0), [(T0, T0 + timedelta(days=3))])
    end = T0 + timedelta(days=30)
    assert reader.read("sim", "NSE:X", Timeframe.D1, T0, end)["close"].tolist() == [1.0] * 3
    assert reader.read_many("sim", ["NSE:X"], Timeframe.D1, T0, end)["NSE:X"].values.shape == (5, 3)
    writer.write("sim", "NSE:X", Timeframe.D1, _bars(5, 2.0), [(T0, T0 + timedelta(days=5))])
    assert reader.read("sim", "NSE:X", Timeframe.D1, T0, end)["close"].tolist() == [2.0] * 5
    assert reader.read_many("sim", ["NSE:X"], Timeframe.D1, T0, end)["NSE:X"].values[3].tolist() == [2.0] * 5
    assert reader.coverage("sim", "NSE:X", Timeframe.D1) == [(T0, T0 + timedelta(days=5))]
    assert reader.coverage_many("sim", ["NSE:X"], Timeframe.D1)["NSE:X"] == [(T0, T0 + timedelta(days=5))]
    writer.clear()
    assert reader.read("sim", "NSE:X", Timeframe.D1, T0, end).empty
    assert reader.read_many("sim", ["NSE:X"], Timeframe.D1, T0, end)["NSE:X"].values.shape == (5, 0)
    assert reader.coverage_many("sim", ["NSE:X"], Timeframe.D1)["NSE:X"] == []


def test_store_frames_are_copies_and_arrays_read_only(tmp_path):
    store = ParquetBarStore(tmp_path)
    store.write("sim", "NSE:X", Timeframe.D1, _bars(3, 1.0), [(T0, T0 + timedelta(days=3))])
    end = T0 + timedelta(days=30)
    frame = store.read("sim", "NSE:X", Timeframe.D1, T0, end)
    frame["close"] = 99.0
    frame.iloc[0, 0] = 99.0
    assert store.read("sim", "NSE:X", Timeframe.D1, T0, end)["close"].tolist() == [1.0] * 3
    arrays = store.read_many("sim", ["NSE:X"], Timeframe.D1, T0, end)["NSE:X"]
    assert not arrays.values.flags.writeable and not arrays.open_ns.flags.writeable
