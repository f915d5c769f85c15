"""Run user-written scanner code over many symbols in a pool of locked-down worker processes.

Implements :class:`quantdesk.services.scanner_code.ScannerExecutor`. Each worker is a fresh
``python -I scanner_child.py`` (see that module for the lock-down: rlimits, chroot, network
namespace, uid ``nobody``, restricted builtins). Workers stay warm across scans; bars travel as
one float64 array per batch of symbols, results come back as JSON in chunks, and the parent
never unpickles anything a worker sends.

What contains what:
  * an endless loop: ITIMER_REAL in the worker raises inside the user code at the per-symbol
    limit; if that does not stop it (a C call, a swallowed exception) the parent SIGKILLs the
    worker's process group ``grace_s`` later, fails that symbol only, and re-runs the rest of
    the batch on a fresh worker;
  * memory: RLIMIT_AS; an allocation past it raises MemoryError in that symbol;
  * files and network: no fd can be opened (RLIMIT_NOFILE = 3), chroot into an empty directory,
    an empty network namespace, ``socket.socket`` replaced; writes hit RLIMIT_FSIZE 0;
  * fork bombs: ``os.fork``/``subprocess`` are unreachable (imports are filtered) and replaced,
    and RLIMIT_NPROC 0 refuses fork and clone for the worker's uid. RLIMIT_NPROC does not bind
    root, so a root parent's workers drop to uid ``nobody`` first; :attr:`ScannerRunner.isolation`
    reports which protections a worker actually got.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import pickle
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from quantdesk.core.errors import ConfigError, QuantdeskError
from quantdesk.services.scanner_code import (
    EXAMPLE_SCANNERS,
    CancelToken,
    ProgressCallback,
    ScanBars,
    ScannerTestResult,
    SymbolResult,
    normalise_signal,
)

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("scanner_child.py")
MAX_MESSAGE_BYTES = 64 << 20
MAX_BATCH_SYMBOLS = 256
STARTUP_TIMEOUT_S = 90.0
CANCEL_GRACE_S = 0.5
MAX_ATTEMPTS = 3
MIN_MEMORY_MB, MAX_MEMORY_MB = 256, 3584


class SandboxUnavailableError(QuantdeskError):
    """Scanner workers cannot be started (the host refuses a limit, the interpreter crashes)."""

    code = "SANDBOX_UNAVAILABLE"
    status = 503


@dataclass
class _Batch:
    id: int
    positions: list[int]
    received: set[int] = field(default_factory=set)


@dataclass
class _Worker:
    proc: subprocess.Popen
    base_dir: str
    status_map: mmap.mmap
    status: np.ndarray
    state: str = "starting"  # starting, idle, busy, dead
    batch: _Batch | None = None
    buffer: bytearray = field(default_factory=bytearray)
    isolation: dict = field(default_factory=dict)
    spawned_at: float = field(default_factory=time.monotonic)
    last_message_at: float = field(default_factory=time.monotonic)
    kill_reason: str | None = None
    cpu_s: float = 0.0

    @property
    def fd(self) -> int:
        return self.proc.stdout.fileno()


def _frame(payload: bytes) -> bytes:
    return struct.pack(">Q", len(payload)) + payload


class ScannerRunner:
    """A warm pool of sandboxed scanner workers; one scan at a time uses the whole pool.

    ``per_symbol_timeout_s`` is wall-clock per symbol; ``memory_limit_mb`` is each worker's
    address-space limit (RLIMIT_AS, which includes ~0.4 GB of interpreter, numpy and pandas);
    ``cpu_budget_s`` is each worker's lifetime CPU limit (RLIMIT_CPU), after which it is
    replaced. With ``die_with_parent`` each worker is killed when the thread that started it
    ends (PR_SET_PDEATHSIG): for a pool living in a job worker process, which an executor may
    kill. Raises ConfigError for limits out of range.
    """

    def __init__(self, workers: int = 2, per_symbol_timeout_s: float = 5.0, memory_limit_mb: int = 2048,
                 *, grace_s: float = 1.0, cpu_budget_s: int = 3600, python: str | None = None,
                 die_with_parent: bool = False):
        if not 1 <= workers <= 64:
            raise ConfigError(f"workers {workers} must be between 1 and 64")
        if not 0.01 <= per_symbol_timeout_s <= 600:
            raise ConfigError(f"per_symbol_timeout_s {per_symbol_timeout_s} must be between 0.01 and 600")
        if not MIN_MEMORY_MB <= memory_limit_mb <= MAX_MEMORY_MB:
            raise ConfigError(f"memory_limit_mb {memory_limit_mb} must be between {MIN_MEMORY_MB} and "
                              f"{MAX_MEMORY_MB} (well under 4 GiB)")
        self.workers = workers
        self.per_symbol_timeout_s = float(per_symbol_timeout_s)
        self.memory_limit_mb = int(memory_limit_mb)
        self.grace_s = grace_s
        self.cpu_budget_s = int(cpu_budget_s)
        self.die_with_parent = die_with_parent
        self._python = python or sys.executable
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._batch_ids = 0
        self._startup_failures = 0
        self._closed = False
        # stops the workers even if close() is never called (at garbage collection or exit)
        self._finalizer = weakref.finalize(self, _shutdown, self._pool)

    # ------------------------------------------------------------------ public API

    @property
    def isolation(self) -> list[dict]:
        """What each ready worker reported about its lock-down (rlimits, chroot, uid, netns)."""
        return [dict(w.isolation) for w in self._pool if w.isolation]

    def start(self, wait: bool = True) -> None:
        """Start the workers now (otherwise the first scan does); optionally wait until ready."""
        with self._lock:
            self._ensure_pool()
            if wait:
                deadline = time.monotonic() + STARTUP_TIMEOUT_S
                while any(w.state == "starting" for w in self._pool) and time.monotonic() < deadline:
                    self._poll(None, 0.1)
                    self._reap_dead(None)

    def run(self, code: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | ScanBars,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None, *,
            owner_id: int | None = None, label: str = "") -> list[SymbolResult]:
        """Run ``code`` once per symbol; return results in input order (``owner_id``, ``label``: unused here).

        Every symbol gets a result (failures carry ``error``) unless ``cancel`` is set, in which
        case the symbols finished so far are returned within about a second. Raises
        SandboxUnavailableError if workers repeatedly fail to start.
        """
        bars = frames if isinstance(frames, ScanBars) else ScanBars.from_frames(frames)
        if self._closed:
            raise SandboxUnavailableError("the scanner runner is closed")
        while not self._lock.acquire(timeout=0.1):
            if cancel is not None and cancel.is_set():
                return []
        try:
            return self._run_locked(code, dict(params), bars, on_progress, cancel)
        finally:
            self._lock.release()

    def test(self, code: str, params: Mapping[str, object], frame: pd.DataFrame, symbol: str) -> ScannerTestResult:
        """Run ``code`` on one symbol; ``execution_time`` is wall-clock seconds end to end."""
        started = time.perf_counter()
        (result,) = self.run(code, params, {symbol: frame})
        return ScannerTestResult(symbol=symbol, signal=result.signal, metrics=result.metrics,
                                 error=result.error, execution_time=time.perf_counter() - started)

    def close(self) -> None:
        """Stop every worker and remove their directories."""
        self._closed = True
        with self._lock:
            self._finalizer()

    def __enter__(self) -> ScannerRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the scan loop

    def _run_locked(self, code, params, bars: ScanBars, on_progress, cancel) -> list[SymbolResult]:
        total = len(bars)
        results: dict[int, SymbolResult] = {}
        if total == 0:
            return []
        self._ensure_pool()
        size = max(1, min(MAX_BATCH_SYMBOLS, -(-total // (self.workers * 4))))
        queue: deque[list[int]] = deque(list(range(a, min(a + size, total))) for a in range(0, total, size))
        attempts: dict[int, int] = {}
        scan = _Scan(code, params, bars, results, queue, attempts, on_progress, total)
        try:
            while len(results) < total:
                if cancel is not None and cancel.is_set():
                    self._cancel(scan)
                    break
                for w in self._pool:
                    if w.state == "idle" and queue:
                        self._dispatch(w, scan, queue.popleft())
                self._poll(scan, 0.05)
                self._watchdog()
                self._reap_dead(scan)
                self._ensure_pool()
        except BaseException:
            for w in self._pool:  # a callback failed or we were interrupted: no half-done batch survives
                if w.state == "busy":
                    self._kill(w, "scan aborted")
            raise
        return [results[i] for i in sorted(results)]

    def _dispatch(self, w: _Worker, scan: _Scan, positions: list[int]) -> None:
        self._batch_ids += 1
        batch = _Batch(self._batch_ids, positions)
        message = ("run", batch.id, scan.code, scan.params, *_pack(scan.bars, positions), self.per_symbol_timeout_s)
        w.status[:] = (-1, 0, 0, batch.id)
        w.batch, w.state, w.last_message_at = batch, "busy", time.monotonic()
        try:
            w.proc.stdin.write(_frame(pickle.dumps(message, protocol=5)))
            w.proc.stdin.flush()
        except OSError:
            w.kill_reason = w.kill_reason or "worker died"
            self._mark_dead(w)

    def _poll(self, scan: _Scan | None, timeout: float) -> None:
        live = [w for w in self._pool if w.state in ("starting", "idle", "busy")]
        if not live:
            time.sleep(timeout)
            return
        with selectors.DefaultSelector() as sel:
            for w in live:
                sel.register(w.fd, selectors.EVENT_READ, w)
            events = sel.select(timeout)
        for key, _ in events:
            w = key.data
            try:
                chunk = os.read(w.fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self._mark_dead(w)
                continue
            w.buffer += chunk
            self._drain(w, scan)

    def _drain(self, w: _Worker, scan: _Scan | None) -> None:
        while len(w.buffer) >= 8:
            (n,) = struct.unpack(">Q", w.buffer[:8])
            if n > MAX_MESSAGE_BYTES:
                self._kill(w, "worker sent an oversized message")
                return
            if len(w.buffer) < 8 + n:
                return
            payload = bytes(w.buffer[8:8 + n])
            del w.buffer[:8 + n]
            w.last_message_at = time.monotonic()
            try:
                message = json.loads(payload)
                self._handle(w, message, scan)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                self._kill(w, f"worker sent a malformed message ({exc})")
                return

    def _handle(self, w: _Worker, message: list, scan: _Scan | None) -> None:
        kind = message[0]
        if kind == "ready" and w.state == "starting":
            w.isolation = dict(message[1])
            w.state = "idle"
            self._startup_failures = 0
            log.debug("scanner worker %s ready: %s", w.proc.pid, w.isolation)
        elif kind == "results" and w.state == "busy" and scan is not None and message[1] == w.batch.id:
            for item in message[2]:
                self._accept(w.batch, scan, item)
        elif kind == "done" and w.state == "busy" and message[1] == w.batch.id:
            w.cpu_s = float(message[2])
            missing = [p for k, p in enumerate(w.batch.positions) if k not in w.batch.received]
            if missing and scan is not None:
                scan.queue.appendleft(missing)  # only after an abort; re-run unless cancelling
            w.batch, w.state = None, "idle"
            if w.cpu_s > 0.8 * self.cpu_budget_s:
                self._kill(w, None)  # replaced before RLIMIT_CPU ends it mid-symbol
        elif kind == "failed":
            log.error("scanner worker %s failed outside user code: %s", w.proc.pid, str(message[2])[-2000:])
            self._kill(w, "worker failed outside the scanner code (see the log)")
        else:
            raise ValueError(f"unexpected message {str(kind)[:40]!r} in state {w.state}")

    def _accept(self, batch: _Batch, scan: _Scan, item: list) -> None:
        k, raw_signal, raw_metrics, error, elapsed_ns = item
        if not isinstance(k, int) or not 0 <= k < len(batch.positions) or k in batch.received:
            raise ValueError(f"bad symbol index {k!r}")
        batch.received.add(k)
        position = batch.positions[k]
        metrics: dict[str, float] = {}
        if error is None:
            try:
                signal_value = normalise_signal(raw_signal)
                if not isinstance(raw_metrics, dict):
                    raise TypeError("metrics is not a dict")
                metrics = {str(key)[:100]: float(v) for key, v in raw_metrics.items()
                           if isinstance(v, int | float) and not isinstance(v, bool)}
            except (TypeError, ValueError) as exc:
                signal_value, error = None, str(exc)
        else:
            signal_value, error = None, str(error)[:1000]
        scan.finish(position, signal_value, metrics, error, float(elapsed_ns) / 1e6)

    # ------------------------------------------------------------------ failures

    def _watchdog(self) -> None:
        now_ns, now = time.monotonic_ns(), time.monotonic()
        limit_ns = int((self.per_symbol_timeout_s + self.grace_s) * 1e9)
        for w in self._pool:
            if w.state == "busy":
                index, started = int(w.status[0]), int(w.status[1])
                if index >= 0 and now_ns - started > limit_ns:
                    self._kill(w, f"time limit of {self.per_symbol_timeout_s:g} s exceeded (worker stopped)")
                elif now - w.last_message_at > 2 * self.per_symbol_timeout_s + 30:
                    self._kill(w, "worker stopped responding")
            elif w.state == "starting" and now - w.spawned_at > STARTUP_TIMEOUT_S:
                self._kill(w, "worker did not start in time")

    def _cancel(self, scan: _Scan) -> None:
        busy = [w for w in self._pool if w.state == "busy"]
        for w in busy:
            w.status[2] = 1
        deadline = time.monotonic() + CANCEL_GRACE_S
        scan.queue.clear()
        while any(w.state == "busy" for w in busy) and time.monotonic() < deadline:
            self._poll(scan, 0.02)
            scan.queue.clear()
        for w in busy:
            if w.state == "busy":
                w.batch = None  # its unfinished symbols are simply not reported
                self._kill(w, "scan cancelled")
        self._reap_dead(None)
        self._ensure_pool()

    def _kill(self, w: _Worker, reason: str | None, wait: float = 2.0) -> None:
        if reason and not w.kill_reason:
            w.kill_reason = reason
            log.warning("stopping scanner worker %s: %s", w.proc.pid, reason)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(w.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=wait)
        self._mark_dead(w)

    def _mark_dead(self, w: _Worker) -> None:
        if w.state == "starting" and not self._closed:
            self._startup_failures += 1
            log.error("scanner worker %s failed to start: %s", w.proc.pid, self._stderr_tail(w))
        if w.state != "dead":
            w.state = "dead" if w.batch is not None else "gone"

    def _reap_dead(self, scan: _Scan | None) -> None:
        for w in [w for w in self._pool if w.state in ("dead", "gone")]:
            try:
                w.proc.wait(timeout=1.0)  # let a dying worker report how it died
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.proc.wait(timeout=2)
            if w.batch is not None and scan is not None:
                self._salvage(w, scan)
            self._pool.remove(w)
            self._dispose(w)

    def _salvage(self, w: _Worker, scan: _Scan) -> None:
        # Blame the symbol the status page says was running; re-run the rest on a fresh worker.
        batch = w.batch
        index = int(w.status[0])
        blamed = index if 0 <= index < len(batch.positions) and index not in batch.received else None
        reason = w.kill_reason or _death_reason(w.proc.returncode, self.memory_limit_mb)
        rerun = []
        for k, position in enumerate(batch.positions):
            if k in batch.received or position in scan.results:
                continue
            if k == blamed:
                scan.finish(position, None, {}, reason, (time.monotonic_ns() - int(w.status[1])) / 1e6)
                continue
            scan.attempts[position] = scan.attempts.get(position, 0) + (1 if blamed is None else 0)
            if scan.attempts[position] >= MAX_ATTEMPTS:
                scan.finish(position, None, {}, f"worker failed repeatedly on this symbol ({reason})", 0.0)
            else:
                rerun.append(position)
        if rerun:
            scan.queue.appendleft(rerun)

    def _ensure_pool(self) -> None:
        if self._closed:
            raise SandboxUnavailableError("the scanner runner is closed")
        if self._startup_failures >= MAX_ATTEMPTS:
            self._startup_failures = 0
            raise SandboxUnavailableError(f"scanner workers failed to start {MAX_ATTEMPTS} times in a row; "
                                          "see the log for their error output")
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())

    def _spawn(self) -> _Worker:
        base = tempfile.mkdtemp(prefix="qd-scanner-")
        root = os.path.join(base, "root")
        os.mkdir(root, 0o700)
        status_path = os.path.join(base, "status")
        with open(status_path, "wb") as fh:
            fh.write(b"\0" * 32)
        with open(status_path, "r+b") as fh:
            status_map = mmap.mmap(fh.fileno(), 32)
        status = np.frombuffer(status_map, dtype=np.int64)
        status[:] = (-1, 0, 0, 0)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": root, "TMPDIR": root,
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_MAX_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               # pandas 3 strings are Arrow-backed; Arrow's own allocator reserves ~1 GB of
               # address space up front, which RLIMIT_AS would count against user code
               "ARROW_DEFAULT_MEMORY_POOL": "system", "ARROW_IO_THREADS": "1"}
        with open(os.path.join(base, "stderr.log"), "wb") as stderr:
            proc = subprocess.Popen([self._python, "-I", str(CHILD_SCRIPT)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=stderr, cwd=root, env=env,
                                    close_fds=True, start_new_session=True)
        config = {"memory_bytes": self.memory_limit_mb << 20, "cpu_seconds": self.cpu_budget_s,
                  "status_path": status_path, "root_dir": root,
                  "parent_pid": os.getpid() if self.die_with_parent else None,
                  "warmup": [s["code"] for s in EXAMPLE_SCANNERS.values()]}
        proc.stdin.write(_frame(pickle.dumps(config)))
        proc.stdin.flush()
        os.set_blocking(proc.stdout.fileno(), False)
        return _Worker(proc=proc, base_dir=base, status_map=status_map, status=status)

    @staticmethod
    def _dispose(w: _Worker) -> None:
        for stream in (w.proc.stdin, w.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        w.status = np.zeros(4, dtype=np.int64)  # drop the view so the mapping can close
        with contextlib.suppress(BufferError):
            w.status_map.close()
        shutil.rmtree(w.base_dir, ignore_errors=True)

    @staticmethod
    def _stderr_tail(w: _Worker) -> str:
        try:
            with open(os.path.join(w.base_dir, "stderr.log"), "rb") as fh:
                return fh.read()[-2000:].decode(errors="replace") or "(no output)"
        except OSError:
            return "(no output)"


@dataclass
class _Scan:
    code: str
    params: dict
    bars: ScanBars
    results: dict[int, SymbolResult]
    queue: deque
    attempts: dict[int, int]
    on_progress: ProgressCallback | None
    total: int

    def finish(self, position: int, signal_value, metrics, error, elapsed_ms: float) -> None:
        symbol = self.bars.symbols[position]
        self.results[position] = SymbolResult(symbol, signal_value, metrics, error, round(elapsed_ms, 3))
        if self.on_progress is not None:
            self.on_progress(symbol, len(self.results), self.total)


def _shutdown(pool: list[_Worker]) -> None:
    for w in pool:
        with contextlib.suppress(OSError, ValueError):
            w.proc.stdin.write(_frame(pickle.dumps(("exit",))))
            w.proc.stdin.flush()
    for w in pool:
        try:
            w.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(w.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=2)
        ScannerRunner._dispose(w)
    pool.clear()


def _pack(bars: ScanBars, positions: list[int]):
    """Cut one batch out of ``bars``: symbols, index ids, unique indexes, (5, n) values, offsets."""
    starts, ends = bars.offsets[positions], bars.offsets[np.asarray(positions) + 1]
    lengths = ends - starts
    offsets = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if positions == list(range(positions[0], positions[-1] + 1)):
        a, b = int(starts[0]), int(ends[-1])
        values, index_ns = bars.values[:, a:b], bars.index_ns[a:b]
    else:
        values = np.concatenate([bars.values[:, s:e] for s, e in zip(starts, ends, strict=True)], axis=1)
        index_ns = np.concatenate([bars.index_ns[s:e] for s, e in zip(starts, ends, strict=True)])
    unique: dict[bytes, int] = {}
    indexes: list[np.ndarray] = []
    index_ids = []
    for k in range(len(positions)):
        ix = index_ns[offsets[k]:offsets[k + 1]]
        key = ix.tobytes()
        if key not in unique:
            unique[key] = len(indexes)
            indexes.append(ix)
        index_ids.append(unique[key])
    symbols = [bars.symbols[p] for p in positions]
    return symbols, index_ids, indexes, np.ascontiguousarray(values), offsets


def _death_reason(returncode: int | None, memory_mb: int) -> str:
    if returncode is None:
        return "worker stopped responding"
    if returncode == -signal.SIGXCPU:
        return "CPU time limit exceeded"
    if returncode == -signal.SIGKILL:
        return f"worker was killed (memory limit of {memory_mb} MB exceeded or the system ran out of memory)"
    if returncode < 0:
        return f"worker crashed ({signal.Signals(-returncode).name})"
    return f"worker exited with code {returncode}"
