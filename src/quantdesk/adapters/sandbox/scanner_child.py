"""Entry point of a scanner worker process: locks itself down, then runs batches of symbols.

Started by :mod:`quantdesk.adapters.sandbox.scanner_runner` as ``python -I <this file>`` with a
minimal environment and an empty temporary directory as cwd. It imports nothing from
quantdesk, so its rules stay independent of the static validator's.

Protocol (fd 0 in, fd 1 out; frames are an 8-byte big-endian length and a payload):
  parent -> child: pickle (the child trusts its parent). First a config dict, then
      ``("run", batch_id, code, params, symbols, index_ids, indexes, values, offsets, timeout_s)``
      or ``("exit",)``.
  child -> parent: JSON only (the parent must not unpickle anything the user's code touched):
      ``["ready", isolation]``, ``["results", batch_id, [[i, signal, metrics, error, ns], ...]]``,
      ``["done", batch_id, cpu_s]``.
A shared 4 x int64 status page (file mapped before lock-down) holds the index of the symbol
running and its start (CLOCK_MONOTONIC ns), so the parent can kill a stuck worker and know
which symbol to blame, and an abort flag the parent sets to cancel a batch.

Lock-down, in order (each step recorded in the ``ready`` message):
 1. numpy, pandas, talib, math, datetime, statistics are imported and warmed up (lazy imports
    cannot happen later: there is no file system left to import from);
 2. ``socket.socket`` & co, ``os.fork``/``system``/``exec*``/``spawn*``/``kill``,
    ``subprocess.Popen`` are replaced by functions raising PermissionError;
 3. when privileged: a new, empty network namespace (unshare CLONE_NEWNET), ``chroot`` into
    the empty cwd, all uids/gids dropped to ``nobody``; parent-death signal SIGKILL;
 4. every fd above 2 is closed and rlimits set soft = hard: RLIMIT_NOFILE 3 (no new file,
    socket or pipe at all), RLIMIT_FSIZE 0, RLIMIT_NPROC 0 (no fork, no thread: this binds
    only a non-root uid, hence step 3), RLIMIT_AS (memory), RLIMIT_CPU (lifetime backstop),
    RLIMIT_CORE 0.
User code then runs with restricted builtins (no open/eval/exec/compile/getattr, an
``__import__`` serving only already-loaded allowlisted modules) under a per-symbol ITIMER_REAL.
"""

from __future__ import annotations

import builtins
import json
import mmap
import os
import pickle
import resource
import signal as _signal
import socket
import struct
import sys
import time
from typing import Any

ALLOWED_MODULES = frozenset({"math", "numpy", "pandas", "talib", "datetime", "statistics"})
BLOCKED_MODULE_PARTS = frozenset({"ctypeslib", "f2py", "testing", "distutils", "compat", "util", "io"})
COLUMNS = ("open", "high", "low", "close", "volume")
NOBODY = 65534
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
FLUSH_EVERY_NS = 50_000_000
MAX_METRICS = 200
MAX_ERROR_CHARS = 500

_STATUS_INDEX, _STATUS_STARTED, _STATUS_ABORT = 0, 1, 2


class TimeLimitExceeded(BaseException):
    """Raised inside user code by SIGALRM; BaseException so ``except Exception`` does not eat it."""


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 24))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int) -> Any:
    (n,) = struct.unpack(">Q", _read_exact(fd, 8))
    return pickle.loads(_read_exact(fd, n))  # noqa: S301 - from our own parent


def _send(fd: int, message: list) -> None:
    data = json.dumps(message, allow_nan=True, default=str).encode()
    view = memoryview(struct.pack(">Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _refuse(what: str):
    def refused(*_args, **_kwargs):
        raise PermissionError(f"{what} is not allowed in scanners")
    return refused


def _block_processes_and_network() -> None:
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        if hasattr(socket, name):
            setattr(socket, name, _refuse("network access"))
    for name in ("fork", "forkpty", "system", "popen", "execv", "execve", "execl", "execle", "execlp",
                 "execlpe", "execvp", "execvpe", "spawnv", "spawnve", "spawnl", "spawnle", "spawnlp",
                 "spawnlpe", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg",
                 "chroot", "setuid", "setresuid", "unshare"):
        if hasattr(os, name):
            setattr(os, name, _refuse(f"os.{name}"))
    if "subprocess" in sys.modules:
        sub = sys.modules["subprocess"]
        for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
            setattr(sub, name, _refuse("starting processes"))


def _privileged_isolation(root_dir: str, report: dict) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() != 0:
        report.update(network_namespace=False, chroot=False, uid=os.getuid())
        return
    report["network_namespace"] = libc.unshare(CLONE_NEWNET) == 0
    try:
        os.chroot(root_dir)
        os.chdir("/")
        report["chroot"] = True
    except OSError:
        report["chroot"] = False
    try:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    except OSError:
        pass
    report["uid"] = os.getuid()


def _die_with_parent(parent_pid: int, report: dict) -> None:
    """Be SIGKILLed when the parent goes (set after the uid change, which would clear it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    report["die_with_parent"] = libc.prctl(PR_SET_PDEATHSIG, int(_signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the setting took
        os._exit(0)


def _set_limits(memory_bytes: int, cpu_s: int, report: dict) -> None:
    os.closerange(3, 1 << 16)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
    limits = {
        "RLIMIT_CORE": 0,
        "RLIMIT_FSIZE": 0,
        "RLIMIT_NOFILE": 3,
        "RLIMIT_NPROC": 0,
        "RLIMIT_AS": memory_bytes,
        "RLIMIT_CPU": cpu_s,
    }
    applied = {}
    for name, value in limits.items():
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
            applied[name] = value
        except (ValueError, OSError) as exc:
            applied[name] = f"failed: {exc}"
    report["rlimits"] = applied


def _safe_import_factory(modules: dict[str, Any]):
    def safe_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - import protocol
        parts = name.split(".") if isinstance(name, str) else [""]
        if level or parts[0] not in ALLOWED_MODULES or any(
                p.startswith("_") or p in BLOCKED_MODULE_PARTS for p in parts[1:]):
            raise ImportError(f"import of {name!r} is not allowed in scanners; allowed: "
                              f"{', '.join(sorted(ALLOWED_MODULES))}")
        for item in fromlist or ():
            if not isinstance(item, str) or item.startswith("_") or item in BLOCKED_MODULE_PARTS:
                raise ImportError(f"importing {item!r} from {name!r} is not allowed in scanners")
        module = sys.modules.get(name)
        if module is None:
            raise ImportError(f"module {name!r} is not available in scanners")
        return module if fromlist else modules.get(parts[0], sys.modules[parts[0]])
    return safe_import


_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "complex",
    "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hasattr", "hash", "hex",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct", "ord",
    "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "True", "False", "None", "Ellipsis", "NotImplemented",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "FloatingPointError",
    "IndexError", "KeyError", "LookupError", "MemoryError", "NameError", "NotImplementedError",
    "OverflowError", "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    "ArithmeticError", "Warning", "RuntimeWarning", "UserWarning",
)


def _safe_builtins(modules: dict[str, Any]) -> dict[str, Any]:
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    safe["__import__"] = _safe_import_factory(modules)
    safe["print"] = lambda *args, **kwargs: None  # stdout is the protocol pipe
    return safe


class Worker:
    def __init__(self, config: dict) -> None:
        import datetime
        import math
        import statistics

        import numpy as np
        import pandas as pd
        import talib

        self.np, self.pd = np, pd
        self.modules = {"math": math, "numpy": np, "pandas": pd, "talib": talib,
                        "datetime": datetime, "statistics": statistics}
        self.builtins = _safe_builtins(self.modules)
        self.columns = pd.Index(list(COLUMNS))
        self.memory_mb = config["memory_bytes"] // (1 << 20)
        self.codes: dict[str, Any] = {}
        self.armed = False
        fd = os.open(config["status_path"], os.O_RDWR)
        self.status_map = mmap.mmap(fd, 32)
        os.close(fd)
        self.status = np.frombuffer(self.status_map, dtype=np.int64)
        _signal.signal(_signal.SIGALRM, self._on_alarm)
        self._warm_up(config.get("warmup", ()))

    def _on_alarm(self, _signum, _frame) -> None:
        if self.armed:
            _signal.setitimer(_signal.ITIMER_REAL, 0.05)  # keep raising if user code swallows it
            raise TimeLimitExceeded

    def _warm_up(self, codes) -> None:
        # Trigger pandas/numpy lazy imports now; afterwards the file system is gone.
        np, pd = self.np, self.pd
        rng = np.random.default_rng(0)
        n = 300
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        values = np.vstack([close, close * 1.01, close * 0.99, close, rng.uniform(1e5, 1e6, n)])
        index = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
        df = pd.DataFrame(values.T, index=index, columns=self.columns)
        c = df["close"]
        for expr in (lambda: c.ewm(span=12, adjust=False).mean(), lambda: c.rolling(20).mean().std(),
                     lambda: c.pct_change().shift(1).diff(), lambda: df.describe(), lambda: c.rank(),
                     lambda: df.resample("W").last(), lambda: c.quantile(0.9), lambda: repr(df.tail()),
                     lambda: df.iloc[-5:].to_dict(), lambda: np.polyfit(np.arange(n), close, 1),
                     lambda: np.linalg.lstsq(np.vstack([np.arange(n), np.ones(n)]).T, close, rcond=None),
                     lambda: c.clip(0, 1).where(c > 0).fillna(0).cumsum().max(),
                     lambda: pd.Timestamp.now(tz="UTC") - df.index[-1],
                     lambda: df.index.tz_convert("Asia/Kolkata")):
            expr()
        for code in codes:
            self._run_one(self._compile(code), {}, df, "WARMUP")

    def _compile(self, code: str):
        compiled = self.codes.get(code)
        if compiled is None:
            try:
                compiled = compile(code, "<scanner>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                line = getattr(exc, "lineno", None)
                compiled = f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}" + (f" at line {line}" if line else "")
            if len(self.codes) > 8:
                self.codes.clear()
            self.codes[code] = compiled
        return compiled

    def _run_one(self, compiled, params: dict, df, symbol: str) -> tuple[str | None, dict, str | None]:
        if isinstance(compiled, str):
            return None, {}, compiled
        g = {"__builtins__": self.builtins, "df": df, "params": dict(params), "symbol": symbol,
             "signal": None, "metrics": {}, **{k: self.modules[v] for k, v in
                                               (("math", "math"), ("np", "numpy"), ("pd", "pandas"),
                                                ("talib", "talib"))}}
        try:
            exec(compiled, g)  # noqa: S102 - the sandbox boundary: restricted builtins, locked-down process
        except TimeLimitExceeded:
            raise
        except MemoryError as exc:
            return None, {}, f"memory limit of {self.memory_mb} MB exceeded{_where(exc)}"
        except RecursionError as exc:
            return None, {}, f"RecursionError: maximum recursion depth exceeded{_where(exc)}"
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything; it fails this symbol
            if isinstance(exc, SystemExit | KeyboardInterrupt | GeneratorExit):
                return None, {}, f"{type(exc).__name__} is not allowed in scanners{_where(exc)}"
            message = str(exc)
            if isinstance(exc, OSError) and exc.errno == 24:
                message = "file, socket and process access is not allowed in scanners"
            return None, {}, f"{type(exc).__name__}: {message}"[:MAX_ERROR_CHARS] + _where(exc)
        return _check_outputs(g.get("signal"), g.get("metrics"))

    def run_batch(self, out_fd: int, message: tuple) -> None:
        _, batch_id, code, params, symbols, index_ids, indexes, values, offsets, timeout_s = message
        pd = self.pd
        compiled = self._compile(code)
        built = [pd.DatetimeIndex(ix.view("M8[ns]")).tz_localize("UTC") for ix in indexes]
        status = self.status
        pending: list[list] = []
        last_flush = time.monotonic_ns()
        for i, symbol in enumerate(symbols):
            if status[_STATUS_ABORT]:
                break
            a, b = int(offsets[i]), int(offsets[i + 1])
            started = time.monotonic_ns()
            status[_STATUS_STARTED] = started
            status[_STATUS_INDEX] = i
            df = pd.DataFrame(values[:, a:b].T, index=built[index_ids[i]], columns=self.columns, copy=False)
            try:
                try:
                    self.armed = True
                    _signal.setitimer(_signal.ITIMER_REAL, timeout_s)
                    sig, metrics, error = self._run_one(compiled, params, df, symbol)
                finally:
                    self.armed = False
                    _signal.setitimer(_signal.ITIMER_REAL, 0)
            except TimeLimitExceeded as exc:
                # the alarm may fire again inside the finally above; disarm for good here
                self.armed = False
                _signal.setitimer(_signal.ITIMER_REAL, 0)
                sig, metrics, error = None, {}, f"time limit of {timeout_s:g} s exceeded{_where(exc)}"
            now = time.monotonic_ns()
            pending.append([i, sig, metrics, error, now - started])
            if now - last_flush >= FLUSH_EVERY_NS:
                _send(out_fd, ["results", batch_id, pending])
                pending, last_flush = [], now
        status[_STATUS_INDEX] = -1
        if pending:
            _send(out_fd, ["results", batch_id, pending])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _send(out_fd, ["done", batch_id, usage.ru_utime + usage.ru_stime])


def _where(exc: BaseException) -> str:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<scanner>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def _check_outputs(raw_signal: Any, raw_metrics: Any) -> tuple[str | None, dict, str | None]:
    if raw_signal is None or raw_signal is False:
        sig = None
    elif isinstance(raw_signal, str) and raw_signal.strip().upper() in ("BUY", "SELL"):
        sig = raw_signal.strip().upper()
    elif isinstance(raw_signal, str) and raw_signal.strip().upper() in ("", "NONE", "HOLD", "NEUTRAL"):
        sig = None
    else:
        return None, {}, f"signal must be 'BUY', 'SELL' or None, got {str(raw_signal)[:60]!r}"
    if raw_metrics is None:
        return sig, {}, None
    if not isinstance(raw_metrics, dict):
        return None, {}, f"metrics must be a dict of numbers, got {type(raw_metrics).__name__}"
    if len(raw_metrics) > MAX_METRICS:
        return None, {}, f"metrics may hold at most {MAX_METRICS} entries, got {len(raw_metrics)}"
    metrics = {}
    for key, value in raw_metrics.items():
        try:
            if isinstance(value, str) or value is None:
                raise TypeError
            metrics[str(key)[:100]] = float(value)
        except (TypeError, ValueError):
            return None, {}, f"metrics[{str(key)[:60]!r}] must be a number, got {type(value).__name__}"
    return sig, metrics, None


def main() -> None:
    in_fd, out_fd = 0, 1
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol pipe
    config = _recv(in_fd)
    report: dict[str, Any] = {"pid": os.getpid()}
    worker = Worker(config)
    with open("/proc/self/statm") as fh:  # address space already in use, for RLIMIT_AS sizing
        report["baseline_mb"] = int(fh.read().split()[0]) * resource.getpagesize() >> 20
    with open("/proc/self/status") as fh:  # threads started so far (none can start later)
        report["threads"] = int(next(line for line in fh if line.startswith("Threads:")).split()[1])
    _privileged_isolation(config["root_dir"], report)
    if config.get("parent_pid"):
        _die_with_parent(config["parent_pid"], report)
    _block_processes_and_network()
    _set_limits(config["memory_bytes"], config["cpu_seconds"], report)
    _send(out_fd, ["ready", report])
    while True:
        message = None
        try:
            message = _recv(in_fd)
            if message[0] == "exit":
                return
            worker.run_batch(out_fd, message)
        except EOFError:
            return
        except BaseException as exc:  # noqa: BLE001 - tell the parent why, then die; it starts a fresh worker
            import traceback

            batch_id = message[1] if message else None
            _send(out_fd, ["failed", batch_id, "".join(traceback.format_exception(exc))[-2000:]])
            raise


if __name__ == "__main__":
    main()
