"""Bars from users' files: CSV or Parquet OHLCV, validated row by row.

Accepted column spellings (case-insensitive): a time column named ``timestamp``, ``time``,
``datetime``, ``date``, ``open_at``, ``open_time`` (or the index of a Parquet file), and
``open high low close volume`` (``o h l c v`` also). Numeric times are epoch seconds or
milliseconds (by magnitude); text without an offset is read in ``assume_tz``.

A row is rejected, with its reason, when a value is missing or not a number, a price is not
positive, volume is negative, ``high < max(open, close)``, ``low > min(open, close)``, or its
time is not after the previous accepted row (duplicate or out of order). A file lacking a
required column, or unreadable, raises InvalidInputError and yields nothing.
"""

from __future__ import annotations

import io
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.instruments import Instrument
from quantdesk.core.market import Timeframe
from quantdesk.services.ports import BAR_COLUMNS, ImportReport, RejectedRow

_TIME_NAMES = ("timestamp", "open_at", "open_time", "datetime", "time", "date")
_SHORT = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "vol": "volume"}
MAX_REJECTIONS_LISTED = 1000


class FileFeed:
    """History provider for imported files (``name = "file"``); also the BarImporter."""

    name = "file"

    def __init__(self) -> None:
        self._frames: dict[tuple[str, Timeframe], pd.DataFrame] = {}
        self._instruments: dict[str, Instrument] = {}
        self._lock = threading.Lock()

    # ---- BarImporter -------------------------------------------------------------------
    def load(self, source: object, *, assume_tz: str = "UTC") -> tuple[pd.DataFrame, ImportReport]:
        """Parse and validate ``source`` (path, bytes or file object; CSV or Parquet).

        Returns the accepted bars in the standard frame shape and the report.
        """
        raw = _read(source)
        return validate_bars(raw, assume_tz=assume_tz)

    def import_file(
        self, source: object, instrument: Instrument, timeframe: Timeframe, *, assume_tz: str = "UTC"
    ) -> ImportReport:
        """Load ``source`` and serve its accepted bars as ``instrument``'s history at ``timeframe``."""
        frame, report = self.load(source, assume_tz=assume_tz)
        with self._lock:
            self._frames[(instrument.id.key, Timeframe(timeframe))] = frame
            self._instruments[instrument.id.key] = instrument
        return report

    # ---- HistoryProvider ---------------------------------------------------------------
    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        with self._lock:
            frame = self._frames.get((instrument.id.key, Timeframe(timeframe)))
        if frame is None:
            return _empty()
        return frame.loc[(frame.index >= start) & (frame.index < end)]

    def search(self, q: str) -> list[Instrument]:
        needle = (q or "").strip().upper()
        with self._lock:
            items = list(self._instruments.values())
        return [i for i in items if needle in i.symbol.upper() or needle in i.name.upper()]


def _read(source: object) -> pd.DataFrame:
    try:
        if isinstance(source, pd.DataFrame):
            return source.copy()
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise InvalidInputError(f"file {str(path)!r} does not exist", field="file")
            data = path.read_bytes()
        elif isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        elif hasattr(source, "read"):
            data = source.read()
            data = data.encode() if isinstance(data, str) else data
        else:
            raise InvalidInputError(f"cannot read bars from {type(source).__name__}", field="file")
        if data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
            if not any(str(c).strip().lower() in _TIME_NAMES for c in frame.columns):
                frame = frame.reset_index()
            return frame
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except InvalidInputError:
        raise
    except Exception as exc:  # boundary: any parser failure is the user's file, not our bug
        raise InvalidInputError(f"file could not be read as CSV or Parquet: {exc}", field="file") from exc


def validate_bars(raw: pd.DataFrame, *, assume_tz: str = "UTC") -> tuple[pd.DataFrame, ImportReport]:
    """Validate an OHLCV table row by row; return accepted bars (standard shape) and the report."""
    try:
        zone = ZoneInfo(assume_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"assume_tz {assume_tz!r} is not a known time zone", field="assume_tz"
        ) from None
    columns = {}
    for col in raw.columns:
        norm = str(col).strip().lower()
        columns.setdefault(_SHORT.get(norm, norm), col)
    time_col = next((columns[n] for n in _TIME_NAMES if n in columns), None)
    first = raw.columns[0] if len(raw.columns) else None
    if time_col is None and first is not None and (str(first).strip() == "" or str(first).startswith("Unnamed")):
        time_col = first  # a CSV written from a pandas frame: the index column has no header
    missing = [c for c in BAR_COLUMNS if c not in columns]
    if time_col is None:
        missing.insert(0, "timestamp")
    if missing:
        raise InvalidInputError(
            f"file lacks required column(s) {', '.join(missing)}; need timestamp, open, high, low, close, volume",
            field="file",
            details={"missing_columns": missing},
        )
    n = len(raw)
    raw_times = raw[time_col]
    times = _parse_times(raw_times, zone)
    values = {
        c: pd.to_numeric(raw[columns[c]], errors="coerce").to_numpy(dtype=np.float64) for c in BAR_COLUMNS
    }
    o, h, lo, c, v = (values[k] for k in BAR_COLUMNS)

    reasons = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, reason: str) -> None:
        hit = mask & (reasons == "")
        reasons[hit] = reason

    flag(np.isnat(times), f"unreadable timestamp in column {time_col!r}")
    for k in BAR_COLUMNS:
        flag(~np.isfinite(values[k]), f"missing or non-numeric {k}")
    flag((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "price must be positive")
    flag(v < 0, "negative volume")
    flag(h < np.maximum(o, c), "high below max(open, close)")
    flag(lo > np.minimum(o, c), "low above min(open, close)")
    flag(h < lo, "high below low")

    # Order check over the rows that passed so far: each must be after the last accepted one.
    keep = reasons == ""
    ns = times.astype("datetime64[ns]").astype(np.int64)
    last = None
    for i in np.flatnonzero(keep):
        t = ns[i]
        if last is not None and t <= last:
            reasons[i] = "duplicate timestamp" if t == last else "timestamp not after the previous row"
            keep[i] = False
        else:
            last = t

    rejected = tuple(
        RejectedRow(row=int(i) + 1, timestamp=str(raw_times.iloc[i]), reason=str(reasons[i]))
        for i in np.flatnonzero(~keep)[:MAX_REJECTIONS_LISTED]
    )
    index = pd.DatetimeIndex(ns[keep].view("datetime64[ns]"), name="open_at").tz_localize(UTC)
    frame = pd.DataFrame({k: values[k][keep] for k in BAR_COLUMNS}, index=index)
    report = ImportReport(
        accepted=int(keep.sum()),
        rejected=rejected,
        first_at=index[0].to_pydatetime() if len(index) else None,
        last_at=index[-1].to_pydatetime() if len(index) else None,
    )
    return frame, report


def _parse_times(col: pd.Series, zone: ZoneInfo) -> np.ndarray:
    """Parse a time column into datetime64[ns] UTC values (NaT where unreadable)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        series = pd.Series(col)
        if series.dt.tz is None:
            series = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        return series.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    as_text = col.astype(str).str.strip()
    numeric = pd.to_numeric(as_text, errors="coerce")
    if len(col) and numeric.notna().all():
        unit = "ms" if float(numeric.abs().max()) > 1e11 else "s"
        return (
            pd.to_datetime(numeric, unit=unit, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        )
    try:
        parsed = pd.to_datetime(as_text, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # mixed offsets or formats: fall back to row by row
        parsed = None
    if parsed is not None and pd.api.types.is_datetime64_any_dtype(parsed):
        return _parse_times(parsed, zone)
    out = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
    for i, text in enumerate(as_text):  # per row, so one bad cell rejects only its row
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            continue
        if ts is pd.NaT or pd.isna(ts):
            continue
        ts = ts.tz_localize(zone) if ts.tzinfo is None else ts
        out[i] = ts.tz_convert(UTC).tz_localize(None).to_datetime64()
    return out


def _empty() -> pd.DataFrame:
    index = pd.DatetimeIndex(np.empty(0, dtype="datetime64[ns]"), name="open_at").tz_localize(UTC)
    return pd.DataFrame({k: np.empty(0) for k in BAR_COLUMNS}, index=index)
