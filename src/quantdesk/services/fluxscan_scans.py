"""FluxScan scans: run a scanner over a watchlist, with live progress, cancel, results and export.

Execution model: a scan runs on a thread of the server process that hands the watchlist, in
chunks of about a quarter (at most :data:`MAX_CHUNK_SYMBOLS`), to the injected
:class:`ScannerExecutor`; the server's splits each chunk into batches run by the job system
(local worker processes, or Ray), each in a sandbox, so user code never runs in the server.
A helper thread loads the next chunk's bars
(:class:`~quantdesk.services.fluxscan_bars.ScanBarsLoader`) and stores the previous chunk's
results (one insert per chunk) while the sandbox runs the current one; the signal count
advances after each chunk, and the scan is finished only once every result is stored.
Progress is published on the bus topic ``fluxscan.scan.<id>`` (at most once per whole
percent, and at each chunk's end) as ``{"type": "scan_progress" | "scan_complete",
"owner_id", "data"}``. A scan is recorded in its own table and, when a :class:`JobService` is
injected, also as an *external* job of type ``"scan"`` (``params.scan_id`` links the two): it
shows in the one task queue with its progress (beside its batches' tasks), and cancelling that
task, or one of its batches', cancels the scan.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time as monotonic
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from quantdesk.core.errors import ConflictError, InvalidInputError, NotFoundError
from quantdesk.core.market import Timeframe
from quantdesk.services.accounts import Principal
from quantdesk.services.fluxscan import FluxScanService
from quantdesk.services.fluxscan_bars import ScanBarsLoader
from quantdesk.services.fluxscan_ports import (
    FINISHED_SCANS,
    FluxScanStore,
    NewResult,
    ResultFilter,
    Scan,
    Scanner,
    ScanResult,
    ScanStatus,
    Watchlist,
)
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.jobs import JobService
from quantdesk.services.scanner_code import ScanBars, ScanCancelledError, ScannerExecutor, SymbolResult

log = logging.getLogger(__name__)

TOPIC_PREFIX = "fluxscan.scan."
MAX_RUNNING_SCANS = 10
MAX_EXPORT_ROWS = 100_000
MAX_TEST_SYMBOLS = 50
# A scan runs in chunks, ``executor.parallel`` at once (one per core: each chunk is one task in
# the job system): a few per lane keep every core busy to the end and store results as they come.
CHUNKS_PER_LANE = 2
MIN_CHUNK_SYMBOLS = 10
MAX_CHUNK_SYMBOLS = 1000
RESTART_REASON = "server restarted while the scan was running"
IST = ZoneInfo("Asia/Kolkata")
JOB_TYPE = "scan"
JOB_CALL_TIMEOUT_S = 10.0
_JOB_STATUS = {ScanStatus.COMPLETED: JobStatus.COMPLETED, ScanStatus.FAILED: JobStatus.FAILED,
               ScanStatus.CANCELLED: JobStatus.CANCELLED}


class BusPort(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...


@dataclass
class _Live:
    scan: Scan
    cancel: threading.Event
    thread: threading.Thread | None = None
    done: int = 0
    signals: int = 0
    symbol: str | None = None
    last_pct: int = -1
    job_id: str | None = None  # the scan's external job in the task queue, when there is one


@dataclass(frozen=True, slots=True)
class ResultPage:
    """One page of results with the reference's pagination fields."""

    items: list[ScanResult]
    total: int
    page: int
    per_page: int

    @property
    def total_pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page)) if self.total else 0

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """A scanner test run: one result per symbol (with last ``price``) and wall-clock seconds."""

    results: list[tuple[SymbolResult, float | None]]
    execution_time: float


def day_bounds(start_date: date | None, end_date: date | None) -> tuple[datetime | None, datetime | None]:
    """UTC bounds of IST days ``start_date``..``end_date`` inclusive; InvalidInputError if reversed."""
    if start_date and end_date and start_date > end_date:
        raise InvalidInputError(f"start_date {start_date} is after end_date {end_date}", field="start_date")
    start = datetime.combine(start_date, time(), tzinfo=IST).astimezone(UTC) if start_date else None
    end = (datetime.combine(end_date + timedelta(days=1), time(), tzinfo=IST).astimezone(UTC)
           if end_date else None)
    return start, end


class ScanService:
    """Start, follow, cancel and read scans; ports (store, executor, bus) are injected."""

    def __init__(self, store: FluxScanStore, fluxscan: FluxScanService, executor: ScannerExecutor, bus: BusPort,
                 loader: ScanBarsLoader, *, jobs: JobService | None = None, default_lookback: int = 250,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.fluxscan = fluxscan
        self.executor = executor
        self.bus = bus
        self.loader = loader
        self.jobs = jobs
        self.default_lookback = default_lookback
        self._now = now
        self._live: dict[int, _Live] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Fail scans a previous process left running and publish on ``loop`` from now on."""
        self._loop = loop
        count = self.store.fail_unfinished_scans(RESTART_REASON, self._now())
        if count:
            log.warning("%d scan(s) were running when the server stopped; marked failed", count)

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel running scans and wait for their threads."""
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            live.cancel.set()
        for live in lives:
            if live.thread is not None:
                live.thread.join(timeout_s)
        self._loop = None

    # ---- commands ----------------------------------------------------------------------
    def start_scan(self, principal: Principal, scanner_id: int, watchlist_id: int,
                   parameters: dict[str, Any] | None = None) -> Scan:
        """Start a scan of the caller's scanner over the caller's watchlist; return it running.

        Raises NotFoundError (scanner or watchlist not the caller's), InvalidInputError (empty
        watchlist, inactive scanner, bad ``lookback_days``/``timeframe``), ConflictError when
        :data:`MAX_RUNNING_SCANS` scans are running.
        """
        scanner = self.fluxscan.scanner_of(principal, scanner_id)
        watchlist = self.fluxscan.watchlist_of(principal, watchlist_id)
        return self.launch(principal.user_id, scanner, watchlist, parameters or {})

    def launch(self, owner_id: int, scanner: Scanner, watchlist: Watchlist, parameters: dict[str, Any],
               schedule_id: int | None = None) -> Scan:
        """Start a scan for ``owner_id`` (ownership already checked; schedules call this)."""
        if not scanner.is_active:
            raise InvalidInputError(f"scanner {scanner.id} is inactive; activate it to run scans", field="scanner_id")
        if not watchlist.symbols:
            raise InvalidInputError(f"watchlist {watchlist.id} has no symbols", field="watchlist_id")
        params = {**scanner.parameters, **parameters}
        timeframe, lookback = self._bar_request(params)
        with self._lock:
            if len(self._live) >= MAX_RUNNING_SCANS:
                raise ConflictError(f"{MAX_RUNNING_SCANS} scans are already running; wait for one to finish",
                                    code="TOO_MANY_SCANS")
            now = self._now()
            scan = self.store.add_scan({
                "owner_id": owner_id, "scanner_id": scanner.id, "watchlist_id": watchlist.id,
                "schedule_id": schedule_id, "scanner_name": scanner.name, "watchlist_name": watchlist.name,
                "status": ScanStatus.RUNNING, "total_symbols": len(watchlist.symbols), "parameters": params,
                "created_at": now, "started_at": now, "progress": 0.0,
            })
            live = _Live(scan, threading.Event())
            self._live[scan.id] = live
        live.thread = threading.Thread(
            target=self._execute, args=(live, scanner.code, params, watchlist, timeframe, lookback),
            name=f"scan-{scan.id}", daemon=True)
        live.thread.start()
        return scan

    def _bar_request(self, params: dict[str, Any]) -> tuple[Timeframe, int]:
        raw = params.get("lookback_days", params.get("lookback_bars", self.default_lookback))
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 2 <= int(raw) <= 5000:
            raise InvalidInputError(f"lookback_days {raw!r} must be a whole number from 2 to 5000",
                                    field="parameters.lookback_days")
        timeframe = Timeframe.parse(str(params.get("timeframe", "1d")), field="parameters.timeframe")
        return timeframe, int(raw)

    def cancel_scan(self, principal: Principal, scan_id: int) -> Scan:
        """Cancel a running scan (it stops within about a second); ConflictError when it has finished."""
        scan = self._scan_of(principal, scan_id)
        with self._lock:
            live = self._live.get(scan.id)
        if live is None or scan.status in FINISHED_SCANS:
            raise ConflictError(f"scan {scan_id} is already {scan.status.value}; only running scans can be cancelled",
                                code="SCAN_FINISHED")
        live.cancel.set()
        return replace(scan, status=ScanStatus.CANCELLED)

    # ---- queries -----------------------------------------------------------------------
    def _scan_of(self, principal: Principal, scan_id: int) -> Scan:
        scan = self.store.get_scan(scan_id)
        if scan is None or scan.owner_id != principal.user_id:
            raise NotFoundError("scan", scan_id)
        return scan

    def scan_status(self, principal: Principal, scan_id: int) -> Scan:
        """The scan with live progress while it runs (NotFoundError if not the caller's)."""
        scan = self._scan_of(principal, scan_id)
        with self._lock:
            live = self._live.get(scan_id)
            if live is not None and scan.status is ScanStatus.RUNNING:
                return replace(scan, progress=float(live.done * 100 // max(1, scan.total_symbols)),
                               symbols_scanned=live.done, signals_found=live.signals)
        return scan

    def wait(self, scan_id: int, timeout_s: float = 60.0) -> Scan:
        """Block until the scan's thread has finished; return the stored scan (TimeoutError otherwise)."""
        with self._lock:
            live = self._live.get(scan_id)
        if live is not None and live.thread is not None:
            live.thread.join(timeout_s)
            if live.thread.is_alive():
                raise TimeoutError(f"scan {scan_id} still running after {timeout_s} s")
        scan = self.store.get_scan(scan_id)
        if scan is None:
            raise NotFoundError("scan", scan_id)
        return scan

    def list_results(self, principal: Principal, flt: ResultFilter, page: int, per_page: int) -> ResultPage:
        """A page of the caller's results, newest first (``flt.owner_id`` is replaced by the caller's)."""
        flt = replace(flt, owner_id=principal.user_id)
        items, total = self.store.page_results(flt, (page - 1) * per_page, per_page)
        return ResultPage(items, total, page, per_page)

    def export_results(self, principal: Principal, flt: ResultFilter) -> list[ScanResult]:
        """The caller's results matching ``flt``, oldest first (at most :data:`MAX_EXPORT_ROWS`)."""
        return self.store.export_results(replace(flt, owner_id=principal.user_id), MAX_EXPORT_ROWS)

    def test_scanner(self, principal: Principal, scanner_id: int, symbols: list[str] | None,
                     parameters: dict[str, Any] | None) -> TestOutcome:
        """Run a scanner on a few symbols now (nothing stored); ``execution_time`` in seconds end to end."""
        started = monotonic.perf_counter()
        scanner = self.fluxscan.scanner_of(principal, scanner_id)
        exchange = self.fluxscan.get_settings(principal)["default_exchange"]
        wanted = symbols or ["RELIANCE", "TCS", "INFY"]
        if len(wanted) > MAX_TEST_SYMBOLS:
            raise InvalidInputError(f"test at most {MAX_TEST_SYMBOLS} symbols, got {len(wanted)}", field="symbols")
        bad = [s for s in wanted if not self.fluxscan.market.validate_symbol(s, exchange)]
        if bad:
            msg = f"unknown symbol(s) on {exchange}: {', '.join(bad)}"
            raise InvalidInputError(msg, field="symbols", errors={"symbols": msg})
        resolved = [self.fluxscan.market.resolve(s, exchange).symbol for s in wanted]
        params = {**scanner.parameters, **(parameters or {})}
        timeframe, lookback = self._bar_request(params)
        bars, errors = self.loader.load(resolved, exchange, timeframe, lookback)
        label = f"Test of scanner {scanner.name!r}"
        ran = ({r.symbol: r for r in self.executor.run(scanner.code, params, bars, owner_id=principal.user_id,
                                                         label=label)} if len(bars) else {})
        prices = _last_closes(bars)
        out = []
        for sym in resolved:
            result = ran.get(sym) or SymbolResult(sym, None, {}, errors.get(sym, "no data"), 0.0)
            out.append((result, prices.get(sym)))
        return TestOutcome(out, monotonic.perf_counter() - started)

    # ---- the scan thread ---------------------------------------------------------------
    def _execute(self, live: _Live, code: str, params: dict[str, Any], watchlist: Watchlist,
                 timeframe: Timeframe, lookback: int) -> None:
        scan = live.scan
        status, error = ScanStatus.COMPLETED, None
        self._job_start(live)
        symbols = list(watchlist.symbols)
        lanes = max(1, int(getattr(self.executor, "parallel", 1)))
        count = max(1, min(math.ceil(len(symbols) / MIN_CHUNK_SYMBOLS),
                           max(lanes * CHUNKS_PER_LANE, math.ceil(len(symbols) / MAX_CHUNK_SYMBOLS))))
        size = math.ceil(len(symbols) / count)
        chunks = [symbols[i:i + size] for i in range(0, len(symbols), size)]
        label = f"Scan {scan.id} of {scan.watchlist_name} ({scan.scanner_name})"
        chunk_done = [0] * len(chunks)

        def load(part: list[str]) -> tuple[ScanBars, dict[str, str]]:
            return self.loader.load(part, watchlist.exchange, timeframe, lookback)

        def run(k: int) -> None:
            """One chunk on one lane: its bars (loaded ahead, in order), the executor, then its results stored."""
            if live.cancel.is_set():
                return
            bars, load_errors = loads[k].result()
            rows = [self._row(scan, SymbolResult(s, None, {}, msg, 0.0), None) for s, msg in load_errors.items()]

            def progress(symbol: str, done: int, _total: int) -> None:
                with self._lock:
                    chunk_done[k] = len(rows) + done
                    total_done = sum(chunk_done)
                self._progress(live, symbol, total_done)

            results = (self.executor.run(code, params, bars, on_progress=progress, cancel=live.cancel,
                                         owner_id=scan.owner_id, label=f"{label}, part {k + 1} of {len(chunks)}")
                       if len(bars) else [])
            prices = _last_closes(bars)
            rows += [self._row(scan, r, prices.get(r.symbol)) for r in results]
            stores.append(io.submit(self.store.add_results, rows))
            with self._lock:
                chunk_done[k] = len(rows)
                live.signals += sum(1 for r in results if r.signal is not None)
                total_done = sum(chunk_done)
            self._progress(live, live.symbol, total_done, force=True)

        # One loader thread reads every chunk's bars in order, ahead of the lanes; one writer
        # thread stores each chunk's results as it ends; ``lanes`` chunks run at once.
        loader = ThreadPoolExecutor(1, thread_name_prefix=f"scan-{scan.id}-load")
        io = ThreadPoolExecutor(1, thread_name_prefix=f"scan-{scan.id}-store")
        pool = ThreadPoolExecutor(lanes, thread_name_prefix=f"scan-{scan.id}-lane")
        stores: list[Future] = []
        try:
            loads = [loader.submit(load, part) for part in chunks]
            runs = [pool.submit(run, k) for k in range(len(chunks))]
            for future in runs:
                try:
                    future.result()
                except BaseException:
                    live.cancel.set()  # stop the other lanes, then report the first failure
                    raise
            for future in stores:
                future.result()
            if live.cancel.is_set():
                status = ScanStatus.CANCELLED
        except ScanCancelledError as exc:  # one of its batches' tasks was cancelled
            log.info("scan %s cancelled: %s", scan.id, exc)
            status = ScanStatus.CANCELLED
        except Exception as exc:  # the scan boundary: fail this scan, keep the server
            log.exception("scan %s failed", scan.id)
            status, error = ScanStatus.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            loader.shutdown(wait=True, cancel_futures=True)
            io.shutdown(wait=True)  # a finished chunk's results are stored before the scan is
        with self._lock:
            live.done = max(live.done, sum(chunk_done))
        self._finish(live, status, error)

    def _row(self, scan: Scan, r: SymbolResult, price: float | None) -> NewResult:
        return NewResult(scan.id, scan.owner_id, scan.scanner_id, scan.scanner_name, r.symbol, r.signal,
                         dict(r.metrics), price, r.error, self._now())

    def _progress(self, live: _Live, symbol: str | None, done: int, force: bool = False) -> None:
        total = max(1, live.scan.total_symbols)
        with self._lock:
            live.done = max(live.done, done)
            live.symbol = symbol
            pct = live.done * 100 // total
            if pct == live.last_pct and not force:
                return
            live.last_pct = pct
            data = {"scan_id": live.scan.id, "status": "running", "progress": pct, "symbol": symbol,
                    "symbols_scanned": live.done, "total_symbols": live.scan.total_symbols,
                    "signals_found": live.signals}
        self._publish(live.scan, "scan_progress", data)
        if live.job_id is not None:
            description = (f"Scanning {symbol or '...'} ({data['symbols_scanned']}/{data['total_symbols']}), "
                           f"{data['signals_found']} signal(s)")
            future = self._on_loop(lambda jobs: jobs.progress_external(live.job_id, float(pct), description))
            if future is not None:
                future.add_done_callback(lambda f: _stop_unless_running(f, live))

    def _finish(self, live: _Live, status: ScanStatus, error: str | None) -> None:
        scan = live.scan
        with self._lock:
            done, signals = live.done, live.signals
        progress = 100.0 if status is ScanStatus.COMPLETED else float(done * 100 // max(1, scan.total_symbols))
        try:
            self.store.update_scan(scan.id, {
                "status": status, "progress": progress, "symbols_scanned": done, "signals_found": signals,
                "error": error, "completed_at": self._now(),
            })
        finally:
            with self._lock:
                self._live.pop(scan.id, None)
            self._job_finish(live, status, error, {"scan_id": scan.id, "symbols_scanned": done,
                                                   "total_symbols": scan.total_symbols, "signals_found": signals})
        self._publish(scan, "scan_complete", {
            "scan_id": scan.id, "status": status.value, "total_scanned": done, "symbols_scanned": done,
            "total_symbols": scan.total_symbols, "signals_found": signals, "progress": progress, "error": error,
        })

    # ---- the scan's external job ------------------------------------------------------
    def _on_loop(self, call: Callable[[JobService], Any]) -> Future | None:
        """Run ``call(self.jobs)`` (a coroutine) on the server's loop from a scan thread; None without jobs or loop."""
        jobs, loop = self.jobs, self._loop
        if jobs is None or loop is None or loop.is_closed():
            return None
        coro = call(jobs)
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop is shutting down
            coro.close()
            return None

    def _job_start(self, live: _Live) -> None:
        scan = live.scan
        future = self._on_loop(lambda jobs: jobs.start_external(
            scan.owner_id, JOB_TYPE, description=f"Scanning {scan.watchlist_name} with {scan.scanner_name}",
            params={"scan_id": scan.id, "scanner_id": scan.scanner_id, "watchlist_id": scan.watchlist_id,
                    "total_symbols": scan.total_symbols},
            on_cancel=live.cancel.set))
        if future is None:
            return
        try:
            live.job_id = future.result(JOB_CALL_TIMEOUT_S).id
        except Exception:  # the scan runs without a queue entry rather than not at all
            future.cancel()
            log.exception("could not record scan %s in the task queue", scan.id)

    def _job_finish(self, live: _Live, status: ScanStatus, error: str | None, result: dict[str, Any]) -> None:
        job_id = live.job_id
        if job_id is None:
            return
        future = self._on_loop(lambda jobs: jobs.finish_external(job_id, _JOB_STATUS[status], result=result,
                                                                 error=error))
        if future is None:
            return
        try:
            future.result(JOB_CALL_TIMEOUT_S)
        except Exception:  # the scan is stored; a restart fails the job
            log.exception("could not finish the task of scan %s", live.scan.id)

    def _publish(self, scan: Scan, kind: str, data: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        message = {"type": kind, "owner_id": scan.owner_id, "data": data}
        try:
            asyncio.run_coroutine_threadsafe(self.bus.publish(f"{TOPIC_PREFIX}{scan.id}", message), loop)
        except RuntimeError:  # the loop is shutting down; state is in the database
            log.debug("could not publish %s for scan %s", kind, scan.id)


def _stop_unless_running(future: Future, live: _Live) -> None:
    """Cancel the scan once its job has been cancelled elsewhere (progress_external answered False)."""
    if not future.cancelled() and future.exception() is None and future.result() is False:
        live.cancel.set()


def _last_closes(bars) -> dict[str, float]:
    out = {}
    close = bars.values[3] if len(bars) else None
    for i, sym in enumerate(bars.symbols):
        a, b = int(bars.offsets[i]), int(bars.offsets[i + 1])
        if b > a:
            out[sym] = float(close[b - 1])
    return out
