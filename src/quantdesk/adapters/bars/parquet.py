"""Parquet bar cache: one file per (provider, instrument key, timeframe) under a data directory.

Layout: ``<root>/<provider>/<key>/<timeframe>.parquet`` holding columns ``open_at``
(timestamp[ns, UTC]) and ``open high low close volume`` (float64), sorted and unique by
``open_at``; beside it ``<timeframe>.coverage.json`` lists the half-open UTC ranges already
fetched (in integer nanoseconds). Files are replaced atomically (write to a temporary
file, then rename), the bars before the coverage, so a crash loses at most a re-fetch.

Reads go through pyarrow straight to NumPy (no pandas parsing): a year of 1m bars is a
few tens of milliseconds. For small series the per-file cost (opening and parsing the
Parquet footer, about 0.15 ms, under the GIL) dominates, so parsed small series and coverage
lists are kept in memory keyed by the file's identity (inode, size, mtime): every
read checks it with one ``stat``, and every write replaces the file (a new inode), so a
read always sees the files as they are, after a cache clear, an import, or another
process's write. ``read_many`` reads 2,000 series of 300 daily bars in about 0.3 s cold
and 0.03 s from memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe
from quantdesk.services.ports import BAR_COLUMNS, BarArrays

_SCHEMA = pa.schema(
    [pa.field("open_at", pa.timestamp("ns", tz="UTC"), nullable=False)]
    + [pa.field(c, pa.float64(), nullable=False) for c in BAR_COLUMNS]
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_NS_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MEMO_MAX_SERIES_ROWS = 50_000  # longer series are read at close to disk speed; keeping them gains little


class _Memo:
    """Parsed files by path, valid while the file's identity is unchanged; bounded by total rows."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self._data: OrderedDict[str, tuple[tuple, object, int]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, path: str, ident: tuple):
        with self._lock:
            hit = self._data.get(path)
            if hit is None or hit[0] != ident:
                return None
            self._data.move_to_end(path)
            return hit[1]

    def put(self, path: str, ident: tuple, value, rows: int) -> None:
        with self._lock:
            self._drop(path)
            if rows > self.max_rows:
                return
            self._data[path] = (ident, value, rows)
            self._rows += rows
            while self._rows > self.max_rows:
                _, (_, _, dropped) = self._data.popitem(last=False)
                self._rows -= dropped

    def forget(self, path: str) -> None:
        with self._lock:
            self._drop(path)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._rows = 0

    def _drop(self, path: str) -> None:
        old = self._data.pop(path, None)
        if old is not None:
            self._rows -= old[2]


class ParquetBarStore:
    """BarStore on local Parquet files; safe for concurrent use by threads of one process.

    ``memory_rows`` bounds the parsed small series kept in memory (48 bytes a row; the
    default is about 70 MB); 0 turns that off.
    """

    def __init__(self, root: str | os.PathLike[str], *, memory_rows: int = 1_500_000):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._bars_memo = _Memo(memory_rows)
        self._coverage_memo = _Memo(memory_rows // 10)

    # ---- BarStore ----------------------------------------------------------------------
    def read(
        self, provider: str, key: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Stored bars opening in ``[start, end)``, in the standard frame shape."""
        path = self._bars_path(provider, key, timeframe)
        try:
            times, values = self._load(str(path))
        except FileNotFoundError:
            return _frame(np.empty(0, np.int64), [np.empty(0)] * len(BAR_COLUMNS))
        lo, hi = np.searchsorted(times, [_ns(start), _ns(end)], side="left")
        return _frame(times[lo:hi].copy(), list(values[:, lo:hi].copy()))

    def write(
        self,
        provider: str,
        key: str,
        timeframe: Timeframe,
        bars: pd.DataFrame,
        covered: list[tuple[datetime, datetime]] = (),
    ) -> None:
        """Merge ``bars`` into the series (new rows win on equal open times) and record ``covered``."""
        path = self._bars_path(provider, key, timeframe)
        with self._lock(path):
            if len(bars):
                new_times, new_cols = _arrays_of(bars)
                if path.exists():
                    old_times, old_cols = self._read_arrays(path)
                    new_times, new_cols = _merge(old_times, old_cols, new_times, new_cols)
                self._bars_memo.forget(str(path))
                ident = self._write_arrays(path, new_times, new_cols)
                self._remember(str(path), ident, new_times, np.stack(new_cols))
            if covered:
                cov = _coverage_path(path)
                ranges = _union(self._coverage_ns(path) + [(_ns(a), _ns(b)) for a, b in covered if a < b])
                self._coverage_memo.forget(str(cov))
                ident = _atomic_write_text(cov, json.dumps(ranges))
                self._coverage_memo.put(str(cov), ident, tuple((_dt(a), _dt(b)) for a, b in ranges), len(ranges) + 1)

    def coverage(self, provider: str, key: str, timeframe: Timeframe) -> list[tuple[datetime, datetime]]:
        """Sorted, disjoint fetched ranges of the series (UTC, half-open)."""
        return self._coverage_of(str(_coverage_path(self._bars_path(provider, key, timeframe))))

    def coverage_many(
        self, provider: str, keys: Sequence[str], timeframe: Timeframe
    ) -> dict[str, list[tuple[datetime, datetime]]]:
        """``coverage`` of many series of one provider and timeframe."""
        folder, name = self._folder(provider, timeframe), f"{Timeframe(timeframe).value}.coverage.json"
        return {key: self._coverage_of(os.path.join(folder, _safe_key(key), name)) for key in keys}

    def read_many(
        self, provider: str, keys: Sequence[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, BarArrays]:
        """Bars of many series opening in ``[start, end)`` as arrays (read-only; copy to change them)."""
        folder, name = self._folder(provider, timeframe), f"{Timeframe(timeframe).value}.parquet"
        bounds = np.array([_ns(start), _ns(end)], dtype=np.int64)

        def one(key: str) -> BarArrays:
            try:
                times, values = self._load(os.path.join(folder, _safe_key(key), name))
            except FileNotFoundError:
                return BarArrays(np.empty(0, np.int64), np.empty((len(BAR_COLUMNS), 0)))
            lo, hi = np.searchsorted(times, bounds, side="left")
            return BarArrays(times[lo:hi], values[:, lo:hi])  # read-only views

        return {key: one(key) for key in dict.fromkeys(keys)}

    def clear(self) -> None:
        """Delete every cached series under the root directory (the directory itself stays)."""
        with self._locks_guard:
            self._bars_memo.clear()
            self._coverage_memo.clear()
            for child in self.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    # ---- extras for tools and benchmarks -----------------------------------------------
    def read_arrays(
        self, provider: str, key: str, timeframe: Timeframe
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The whole series as (int64 ns open times, [open, high, low, close, volume]) NumPy arrays."""
        path = self._bars_path(provider, key, timeframe)
        if not path.exists():
            return np.empty(0, np.int64), [np.empty(0) for _ in BAR_COLUMNS]
        return self._read_arrays(path)

    def series(self) -> list[tuple[str, str, str]]:
        """Every stored (provider, key, timeframe) triple."""
        return sorted(
            (p.parent.parent.name, p.parent.name, p.name.removesuffix(".parquet"))
            for p in self.root.glob("*/*/*.parquet")
        )

    # ---- internals ---------------------------------------------------------------------
    def _bars_path(self, provider: str, key: str, timeframe: Timeframe) -> Path:
        if not provider or not key:
            raise InvalidInputError("provider and key are required", field="key")
        return (
            self.root
            / _SAFE.sub("_", provider)
            / _SAFE.sub("_", key)
            / f"{Timeframe(timeframe).value}.parquet"
        )

    def _folder(self, provider: str, timeframe: Timeframe) -> str:
        if not provider:
            raise InvalidInputError("provider is required", field="provider")
        Timeframe(timeframe)
        return os.path.join(self.root, _SAFE.sub("_", provider))

    def _lock(self, path: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())

    def _coverage_ns(self, path: Path) -> list[tuple[int, int]]:
        cov = _coverage_path(path)
        if not cov.exists():
            return []
        return [(int(a), int(b)) for a, b in json.loads(cov.read_text())]

    def _coverage_of(self, path: str) -> list[tuple[datetime, datetime]]:
        try:
            ident = _identity(path)
        except FileNotFoundError:
            return []
        hit = self._coverage_memo.get(path, ident)
        if hit is None:
            try:
                with open(path) as fh:
                    hit = tuple((_dt(int(a)), _dt(int(b))) for a, b in json.load(fh))
            except FileNotFoundError:
                return []
            self._coverage_memo.put(path, ident, hit, len(hit) + 1)
        return list(hit)

    def _load(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(int64 ns open times, (5, n) float64 values) of a whole file, both read-only."""
        ident = _identity(path)
        hit = self._bars_memo.get(path, ident)
        if hit is not None:
            return hit
        times, columns = self._read_arrays(path)
        # copies: the arrays pyarrow gives view the memory-mapped file, which is replaced on write
        return self._remember(path, ident, times.copy(), np.stack(columns))

    def _remember(self, path: str, ident: tuple, times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        times.flags.writeable = False
        values.flags.writeable = False
        if len(times) <= _MEMO_MAX_SERIES_ROWS:
            self._bars_memo.put(path, ident, (times, values), max(len(times), 1))
        return times, values

    @staticmethod
    def _read_arrays(path: Path | str) -> tuple[np.ndarray, list[np.ndarray]]:
        # ParquetFile skips the dataset layer of pq.read_table: about 5x faster on small files
        table = pq.ParquetFile(path, memory_map=True).read(use_threads=False)
        return _numpy(table.column(0)).view(np.int64), [_numpy(table.column(i + 1)) for i in range(len(BAR_COLUMNS))]

    @staticmethod
    def _write_arrays(path: Path, times: np.ndarray, columns: list[np.ndarray]) -> tuple[int, int, int]:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = [pa.array(times, type=pa.int64()).cast(_SCHEMA.field(0).type)]
        arrays += [pa.array(np.ascontiguousarray(c, dtype=np.float64)) for c in columns]
        table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            # Uncompressed, one row group, no dictionary: the fastest layout to read back whole
            # (tick-grid float prices barely compress anyway).
            pq.write_table(
                table, tmp, compression="none", use_dictionary=False, row_group_size=max(len(times), 1)
            )
            ident = _identity(tmp)  # a rename keeps inode, size and mtime
            os.replace(tmp, path)
            return ident
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _identity(path: str) -> tuple[int, int, int]:
    # every write renames a fresh file over the old one, so the inode changes with the content
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    # our files hold one row group, so one chunk: a zero-copy view (casting would copy, slowly)
    chunk = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_timestamp(chunk.type):
        chunk = chunk.view(pa.int64())
    return chunk.to_numpy(zero_copy_only=False)


def _safe_key(key: str) -> str:
    if not key:
        raise InvalidInputError("key is required", field="key")
    return _SAFE.sub("_", key)


def _coverage_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".parquet") + ".coverage.json")


def _atomic_write_text(path: Path, text: str) -> tuple[int, int, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    ident = _identity(tmp)
    os.replace(tmp, path)
    return ident


def _union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _merge(old_t, old_c, new_t, new_c):
    # Keep old rows whose time is not in the new batch, then interleave; new rows win.
    keep = ~np.isin(old_t, new_t)
    times = np.concatenate([old_t[keep], new_t])
    order = np.argsort(times, kind="stable")
    return times[order], [np.concatenate([o[keep], n])[order] for o, n in zip(old_c, new_c, strict=True)]


def _arrays_of(bars: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise InvalidInputError(f"bars lack columns {missing}", field="bars")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise InvalidInputError("bars need a timezone-aware DatetimeIndex", field="bars")
    times = index.tz_convert(UTC).as_unit("ns").asi8
    cols = [bars[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS]
    order = np.argsort(times, kind="stable")
    times = times[order]
    cols = [c[order] for c in cols]
    if len(times) > 1:  # last duplicate wins
        last = np.append(times[1:] != times[:-1], True)
        times, cols = times[last], [c[last] for c in cols]
    return times, cols


def _frame(times: np.ndarray, columns: list[np.ndarray]) -> pd.DataFrame:
    index = pd.DatetimeIndex(times.view("datetime64[ns]"), name="open_at").tz_localize(UTC)
    return pd.DataFrame(dict(zip(BAR_COLUMNS, columns, strict=True)), index=index, copy=False)


def _ns(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{at!r} must be timezone-aware", field="start")
    delta = at.astimezone(UTC) - _NS_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _dt(ns: int) -> datetime:
    return _NS_EPOCH + timedelta(microseconds=ns // 1000)
