from datetime import UTC, datetime

import pandas as pd
import pytest

from quantdesk.adapters.feeds.file import FileFeed
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe

GOOD_AND_BAD = """Date,Open,High,Low,Close,Volume
2024-01-01T00:00:00Z,100,101,99,100.5,10
2024-01-01T00:01:00Z,100.5,100,99,100.2,5
2024-01-01T00:02:00Z,100.2,101,99,,5
2024-01-01T00:02:00Z,100.2,101,99,100,-1
2024-01-01T00:03:00Z,100,101,99,100.1,3
2024-01-01T00:03:00Z,100,101,99,100.1,3
2024-01-01T00:01:30Z,100,101,99,100.1,3
garbage,100,101,99,100.1,3
2024-01-01T00:04:00Z,100,101,100.5,100.1,3
2024-01-01T00:05:00Z,0,101,99,100.1,3
"""


def test_file_csv_validation_reports_each_rejected_row_with_reason(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(GOOD_AND_BAD)
    frame, report = FileFeed().load(path)
    assert report.accepted == 2
    assert [(r.row, r.reason) for r in report.rejected] == [
        (2, "high below max(open, close)"),
        (3, "missing or non-numeric close"),
        (4, "negative volume"),
        (6, "duplicate timestamp"),
        (7, "timestamp not after the previous row"),
        (8, "unreadable timestamp in column 'Date'"),
        (9, "low above min(open, close)"),
        (10, "price must be positive"),
    ]
    assert frame.index.tolist() == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 00:03", tz="UTC"),
    ]
    assert report.as_dict()["rejected"][0] == {
        "row": 2,
        "timestamp": "2024-01-01T00:01:00Z",
        "reason": "high below max(open, close)",
    }


def test_file_parquet_and_local_time_zone(tmp_path):
    idx = pd.DatetimeIndex(["2024-01-02 09:15", "2024-01-02 09:16"], name="datetime")
    src = pd.DataFrame(
        {"o": [1.0, 2.0], "h": [2.0, 3.0], "l": [0.5, 1.5], "c": [1.5, 2.5], "v": [10, 20]}, index=idx
    )
    path = tmp_path / "bars.parquet"
    src.to_parquet(path)
    frame, report = FileFeed().load(path, assume_tz="Asia/Kolkata")
    assert report.accepted == 2 and not report.rejected
    assert frame.index[0] == pd.Timestamp("2024-01-02 03:45", tz="UTC")
    assert frame["volume"].tolist() == [10.0, 20.0]


def test_file_epoch_milliseconds(tmp_path):
    frame, report = FileFeed().load(b"open_time,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,3\n")
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC") and report.accepted == 1


@pytest.mark.parametrize(
    "content",
    [
        b"timestamp,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n",
        b"open,high,low,close,volume\n1,2,0.5,1.5,3\n",
        b"",
    ],
)
def test_file_malformed_raises_invalid_input(content):
    with pytest.raises(InvalidInputError):
        FileFeed().load(content)


def test_file_missing_path_raises_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError):
        FileFeed().load(tmp_path / "nope.csv")


def test_file_feed_serves_imported_history(catalog):
    feed = FileFeed()
    btc = catalog.resolve("BTCUSDT")
    feed.import_file(GOOD_AND_BAD.encode(), btc, Timeframe.M1)
    got = feed.history(
        btc, Timeframe.M1, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 3, tzinfo=UTC)
    )
    assert len(got) == 1
    assert feed.search("btc")[0] == btc
