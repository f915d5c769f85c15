"""Scanner code run as batches in the one job system: the local executor, or Ray when configured.

:class:`JobScannerExecutor` implements :class:`~quantdesk.services.scanner_code.ScannerExecutor`
for the server. ``run`` writes its symbols (the bars, the code and its parameters) to a spool
directory as one batch, submits it as an internal ``scan_batch`` job (:data:`SCAN_BATCH_JOB`)
owned by the scan's owner, and waits, passing the batch's progress on as it reports it; the
scan service makes ``parallel`` such calls at once. Each batch shows in the task queue, waits
there for a core like any job, and is cancelled with the scan (and cancelling a batch's task
cancels the scan).

:func:`scan_batch` is the job function. It runs in the executor's worker process (a local worker
or a Ray worker), where it keeps a warm one-worker :class:`ScannerRunner` for the life of that
process: the user's code runs one level further down, in the locked-down sandbox child, which
dies with the job worker if an executor kills it. Results travel back through the spool (a JSON
file beside the batch), not through the job's stored result, which stays small.

The spool lives under the data directory; a Ray cluster spanning machines needs it on storage
every node mounts at the same path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.adapters.sandbox.scanner_runner import SandboxUnavailableError, ScannerRunner
from quantdesk.services.job_ports import JobCancelledError, JobContext, JobStatus, JobType, JobUpdate
from quantdesk.services.jobs import JobService
from quantdesk.services.scanner_code import (
    CancelToken,
    ProgressCallback,
    ScanBars,
    ScanCancelledError,
    SymbolResult,
)

log = logging.getLogger(__name__)

JOB_TYPE_NAME = "scan_batch"
SCAN_BATCH_JOB = JobType(
    JOB_TYPE_NAME, "quantdesk.adapters.sandbox.scan_batches:scan_batch", cpu_cores=1.0, ram_gb=1.0,
    internal=True, summary="A batch of a FluxScan scan: user scanner code over some symbols, in the sandbox",
)
MAX_BATCH_SYMBOLS = 1000
SUBMIT_TIMEOUT_S = 30.0
POLL_S = 0.05
BARS_FILE, CODE_FILE, RESULTS_FILE = "bars.npz", "code.json", "results.json"


# ----------------------------------------------------------------------------- the spool

def write_batch(directory: Path, code: str, params: Mapping[str, Any], bars: ScanBars) -> None:
    """Write one batch's input into ``directory`` (created; plain arrays and JSON, nothing pickled)."""
    directory.mkdir(parents=True, exist_ok=False)
    np.savez(directory / BARS_FILE, symbols=np.asarray(bars.symbols, dtype=np.str_), index_ns=bars.index_ns,
             values=bars.values, offsets=bars.offsets)
    (directory / CODE_FILE).write_text(json.dumps({"code": code, "params": dict(params)}))


def read_batch(directory: Path) -> tuple[str, dict[str, Any], ScanBars]:
    """The code, parameters and bars :func:`write_batch` wrote."""
    meta = json.loads((directory / CODE_FILE).read_text())
    with np.load(directory / BARS_FILE, allow_pickle=False) as data:
        bars = ScanBars(tuple(str(s) for s in data["symbols"]), data["index_ns"], data["values"], data["offsets"])
    return meta["code"], meta["params"], bars


def write_results(directory: Path, results: list[SymbolResult]) -> None:
    rows = [[r.symbol, r.signal, r.metrics, r.error, r.execution_time_ms] for r in results]
    tmp = directory / (RESULTS_FILE + ".tmp")
    tmp.write_text(json.dumps(rows))
    tmp.replace(directory / RESULTS_FILE)


def read_results(directory: Path) -> list[SymbolResult]:
    rows = json.loads((directory / RESULTS_FILE).read_text())
    return [SymbolResult(str(sym), signal, {str(k): float(v) for k, v in metrics.items()}, error, float(elapsed))
            for sym, signal, metrics, error, elapsed in rows]


# ----------------------------------------------------------------------------- the job function

_RUNNER: dict[tuple[float, int], ScannerRunner] = {}
_RUNNER_LOCK = threading.Lock()


def _worker_runner(per_symbol_timeout_s: float, memory_limit_mb: int) -> ScannerRunner:
    """This worker process's warm sandbox (one worker: the job holds one core), made on first use."""
    key = (float(per_symbol_timeout_s), int(memory_limit_mb))
    with _RUNNER_LOCK:
        runner = _RUNNER.get(key)
        if runner is None:
            for old in _RUNNER.values():
                old.close()
            _RUNNER.clear()
            runner = _RUNNER[key] = ScannerRunner(workers=1, per_symbol_timeout_s=key[0], memory_limit_mb=key[1],
                                                  die_with_parent=True)
        return runner


class _ContextCancel:
    """The job's cancellation as the sandbox runner's cancel token."""

    def __init__(self, ctx: JobContext):
        self._ctx = ctx

    def is_set(self) -> bool:
        return self._ctx.cancelled


def scan_batch(ctx: JobContext, spool: str, symbols: int = 0, label: str = "", per_symbol_timeout_s: float = 5.0,
               memory_limit_mb: int = 1024) -> dict:
    """Run one batch of a scan in this worker's sandbox; results go to the spool, counts to the job.

    Progress reports carry ``detail = {"symbol", "done"}`` (throttled by the job context).
    """
    started = time.perf_counter()
    directory = Path(spool)
    code, params, bars = read_batch(directory)
    total = len(bars)
    ctx.progress(0.0, f"{label or 'Scan batch'}: {total} symbols", {"symbol": None, "done": 0})
    cancel = _ContextCancel(ctx)

    def on_progress(symbol: str, done: int, _total: int) -> None:
        if not cancel.is_set():  # reporting would raise inside the runner; let it stop cleanly instead
            ctx.progress(100.0 * done / max(1, total), None, {"symbol": symbol, "done": done})

    runner = _worker_runner(per_symbol_timeout_s, memory_limit_mb)
    results = runner.run(code, params, bars, on_progress=on_progress, cancel=cancel)
    if cancel.is_set():
        raise JobCancelledError(ctx.job_id)
    write_results(directory, results)
    return {"symbols": total, "signals": sum(1 for r in results if r.signal is not None),
            "errors": sum(1 for r in results if r.error is not None),
            "seconds": round(time.perf_counter() - started, 4)}


# ----------------------------------------------------------------------------- the server's side

class JobScannerExecutor:
    """Run scanner code as ``scan_batch`` jobs through a started :class:`JobService`.

    ``bind(loop)`` gives it the server's event loop (the job service lives there); ``run`` is
    then called from any other thread and blocks until every batch has ended; each call is one
    batch (of at most :data:`MAX_BATCH_SYMBOLS`). ``parallel`` (default: the CPU count, at most
    8) tells the scan service how many calls to make at once; the job service's admission
    decides how many of their batches run at once.
    """

    def __init__(self, jobs: JobService, spool_dir: Path, *, parallel: int | None = None,
                 per_symbol_timeout_s: float = 5.0, memory_limit_mb: int = 1024):
        self.jobs = jobs
        self.spool_dir = Path(spool_dir).resolve()
        self.parallel = max(1, parallel if parallel is not None else min(8, os.cpu_count() or 1))
        self.per_symbol_timeout_s = float(per_symbol_timeout_s)
        self.memory_limit_mb = int(memory_limit_mb)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Submit jobs on ``loop`` from now on (None: stop); clears batches a previous process left."""
        self._loop = loop
        if loop is not None and self.spool_dir.exists():
            for stale in self.spool_dir.iterdir():
                shutil.rmtree(stale, ignore_errors=True)

    def close(self) -> None:
        self._loop = None

    def run(self, code: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | ScanBars,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None, *,
            owner_id: int | None = None, label: str = "") -> list[SymbolResult]:
        bars = frames if isinstance(frames, ScanBars) else ScanBars.from_frames(frames)
        total = len(bars)
        if total == 0:
            return []
        loop = self._loop
        if loop is None or loop.is_closed():
            raise SandboxUnavailableError("the job system is not running; scans cannot start")
        if _running_loop() is loop:
            raise RuntimeError("JobScannerExecutor.run blocks: call it from a worker thread, not the event loop")
        size = math.ceil(total / math.ceil(total / MAX_BATCH_SYMBOLS))
        parts = [list(range(a, min(a + size, total))) for a in range(0, total, size)]
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="scan-", dir=self.spool_dir))
        updates: queue.SimpleQueue[tuple[int, JobUpdate]] = queue.SimpleQueue()
        job_ids: list[str] = []
        try:
            for k, positions in enumerate(parts):
                directory = scratch / f"batch-{k}"
                write_batch(directory, code, params, _select(bars, positions))
                name = f"{label or 'Scan'}: batch {k + 1} of {len(parts)}"
                job_params = {"spool": str(directory), "symbols": len(positions), "label": name,
                              "per_symbol_timeout_s": self.per_symbol_timeout_s,
                              "memory_limit_mb": self.memory_limit_mb}
                future = asyncio.run_coroutine_threadsafe(self.jobs.submit_internal(
                    owner_id, JOB_TYPE_NAME, job_params, description=f"{name} ({len(positions)} symbols), queued",
                    watcher=lambda u, k=k: updates.put((k, u))), loop)
                job_ids.append(_result(future).id)
            return self._collect(bars, parts, scratch, updates, job_ids, on_progress, cancel)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _collect(self, bars: ScanBars, parts: list[list[int]], scratch: Path,
                 updates: queue.SimpleQueue[tuple[int, JobUpdate]], job_ids: list[str],
                 on_progress: ProgressCallback | None, cancel: CancelToken | None) -> list[SymbolResult]:
        total = len(bars)
        done = [0] * len(parts)
        results: dict[int, list[SymbolResult]] = {}
        open_batches = set(range(len(parts)))
        stopped_by: str | None = None
        while open_batches:
            if cancel is not None and cancel.is_set():
                self._cancel([job_ids[k] for k in open_batches])
                break
            try:
                k, update = updates.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if k not in open_batches:
                continue
            symbol = None
            if update.status is JobStatus.RUNNING:
                detail = update.detail or {}
                done[k] = max(done[k], int(detail.get("done") or 0))
                symbol = detail.get("symbol")
            elif update.status is JobStatus.COMPLETED:
                open_batches.discard(k)
                results[k] = read_results(scratch / f"batch-{k}")
                done[k] = len(parts[k])
                symbol = results[k][-1].symbol if results[k] else None
            elif update.status is JobStatus.FAILED:  # the worker, not the user's code (that fails per symbol)
                self._cancel([job_ids[j] for j in open_batches if j != k])
                raise SandboxUnavailableError(f"batch {k + 1} of {len(parts)} failed: {update.error or 'unknown error'}")
            else:  # cancelled through the task queue, not by the scan
                open_batches.discard(k)
                stopped_by = job_ids[k]
                self._cancel([job_ids[j] for j in open_batches])
                break
            if on_progress is not None and symbol is not None:
                on_progress(symbol, sum(done), total)
        if stopped_by is not None:
            raise ScanCancelledError(f"task {stopped_by} of this scan was cancelled")
        return [r for k in sorted(results) for r in results[k]]

    def _cancel(self, job_ids: list[str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        futures = [asyncio.run_coroutine_threadsafe(self.jobs.cancel(None, job_id), loop) for job_id in job_ids]
        for future in futures:
            try:
                future.result(SUBMIT_TIMEOUT_S)
            except Exception as exc:  # finished meanwhile (ConflictError) or the loop is going away
                log.debug("cancelling scan batch: %s", exc)


def _result(future: Future) -> Any:
    try:
        return future.result(SUBMIT_TIMEOUT_S)
    except TimeoutError:
        future.cancel()
        raise SandboxUnavailableError("the job system did not accept the scan batch in time") from None


def _select(bars: ScanBars, positions: list[int]) -> ScanBars:
    """The contiguous symbols ``positions`` of ``bars`` (a view: no copy of the values)."""
    a, b = int(bars.offsets[positions[0]]), int(bars.offsets[positions[-1] + 1])
    offsets = bars.offsets[positions[0]:positions[-1] + 2] - a
    return ScanBars(bars.symbols[positions[0]:positions[-1] + 1], bars.index_ns[a:b], bars.values[:, a:b], offsets)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
