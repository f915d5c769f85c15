"""The scanner sandbox contains hostile code at run time, one symbol at a time.

Validation is bypassed on purpose: these tests prove the runtime layer holds on its own.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from quantdesk.adapters.sandbox import scanner_child
from quantdesk.adapters.sandbox.scanner_runner import ScannerRunner
from quantdesk.core.errors import ConfigError
from quantdesk.services.scanner_code import ALLOWED_MODULES, EXAMPLE_SCANNERS, ScannerExecutor

TIMEOUT_S = 1.0

# Walks object.__subclasses__() to sys.modules: what a static check can miss.
ESCAPE = """
def _modules():
    for cls in ().__class__.__bases__[0].__subclasses__():
        try:
            g = cls.__init__.__globals__
        except AttributeError:
            continue
        if 'sys' in g:
            return g['sys'].modules
mods = _modules()
posix = mods['posix']
"""


def _frame(seed: int, n: int = 260) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": rng.lognormal(13, 0.6, n)}, index=index)


UNIVERSE = {f"S{i:02d}": _frame(i) for i in range(60)}


@pytest.fixture(scope="module")
def runner():
    with ScannerRunner(workers=2, per_symbol_timeout_s=TIMEOUT_S, memory_limit_mb=1024, grace_s=0.5) as r:
        r.start()
        yield r


def _run_one(runner: ScannerRunner, code: str, n: int = 2):
    results = runner.run(code, {}, dict(list(UNIVERSE.items())[:n]))
    assert [r.symbol for r in results] == list(UNIVERSE)[:n]
    return results


def _errors(results) -> list[str]:
    return [r.error or "" for r in results]


def test_runner_implements_executor_port(runner):
    assert isinstance(runner, ScannerExecutor)


def test_runner_worker_reports_its_limits(runner):
    (report, *_) = runner.isolation
    assert report["rlimits"]["RLIMIT_AS"] == 1024 << 20
    assert report["rlimits"]["RLIMIT_NOFILE"] == 3
    assert report["rlimits"]["RLIMIT_FSIZE"] == 0
    assert report["rlimits"]["RLIMIT_NPROC"] == 0
    assert report["uid"] != 0  # RLIMIT_NPROC does not bind root


def test_runtime_allowlist_matches_validator():
    assert scanner_child.ALLOWED_MODULES == ALLOWED_MODULES


@pytest.mark.parametrize("key", sorted(EXAMPLE_SCANNERS))
def test_run_example_scanner_finds_signals_in_order_with_progress(runner, key):
    example = EXAMPLE_SCANNERS[key]
    seen = []
    results = runner.run(example["code"], example["parameters"], UNIVERSE,
                         on_progress=lambda symbol, done, total: seen.append((symbol, done, total)))
    assert [r.symbol for r in results] == list(UNIVERSE)
    assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
    assert any(r.signal in ("BUY", "SELL") for r in results)
    assert all(isinstance(v, float) for r in results for v in r.metrics.values())
    assert [done for _, done, _ in seen] == list(range(1, len(UNIVERSE) + 1))
    assert sorted(s for s, _, _ in seen) == sorted(UNIVERSE) and {t for _, _, t in seen} == {len(UNIVERSE)}


def test_test_run_returns_signal_metrics_and_time(runner):
    result = runner.test("signal = 'BUY'\nmetrics = {'price': df['close'].iloc[-1], 'n': len(df)}",
                         {}, UNIVERSE["S01"], "RELIANCE")
    assert (result.symbol, result.signal, result.error) == ("RELIANCE", "BUY", None)
    assert result.metrics == {"price": float(UNIVERSE["S01"]["close"].iloc[-1]), "n": 260.0}
    assert result.execution_time > 0


def test_run_sees_params_symbol_and_utc_frame(runner):
    code = ("signal = 'SELL' if params['x'] == 3 and symbol == 'S00' else None\n"
            "metrics = {'utc': float(str(df.index.tz) == 'UTC'), 'cols': float(list(df.columns) == "
            "['open', 'high', 'low', 'close', 'volume'])}")
    (result,) = runner.run(code, {"x": 3}, {"S00": UNIVERSE["S00"]})
    assert (result.signal, result.metrics) == ("SELL", {"utc": 1.0, "cols": 1.0})


def test_run_exception_names_error_and_line(runner):
    results = _run_one(runner, "a = 1\nb = 0\nc = a / b\nsignal = 'BUY'")
    assert _errors(results) == ["ZeroDivisionError: division by zero at line 3"] * 2
    assert [r.signal for r in results] == [None, None]


def test_run_bad_signal_value_fails_symbol(runner):
    results = _run_one(runner, "signal = 'LONG'")
    assert all("signal must be 'BUY', 'SELL' or None" in e for e in _errors(results))


@pytest.mark.parametrize(("code", "expected"), [
    ("signal = None\nopen('/etc/passwd').read()", "NameError: name 'open' is not defined at line 2"),
    ("x = pd.read_csv('/etc/passwd')", "not allowed in scanners at line 1"),
    (ESCAPE + "fd = posix.open('/etc/passwd', 0)", "not allowed in scanners at line 12"),
    # even with an fd freed, the chroot (or uid nobody) hides the file
    (ESCAPE + "posix.close(2)\nfd = posix.open('/etc/passwd', 0)", "Error: [Errno"),
])
def test_run_reading_etc_passwd_fails_symbol(code, expected):
    with ScannerRunner(workers=1, per_symbol_timeout_s=TIMEOUT_S) as fresh:
        (result,) = fresh.run(code, {}, {"S00": UNIVERSE["S00"]})
    assert result.signal is None
    assert expected in result.error
    assert "root:" not in result.error


def test_run_writing_a_file_fails_symbol(runner):
    results = _run_one(runner, "np.save('/tmp/qd-scanner-escape.npy', np.ones(3))\nsignal = 'BUY'")
    assert all("not allowed in scanners" in e for e in _errors(results))


@pytest.mark.parametrize(("code", "expected"), [
    ("import socket\ns = socket.socket()", "ImportError: import of 'socket' is not allowed"),
    (ESCAPE + "s = mods['socket'].socket()", "PermissionError: network access is not allowed"),
    (ESCAPE + "s = mods['_socket'].socket()", "not allowed in scanners at line 12"),
])
def test_run_socket_creation_fails_symbol(runner, code, expected):
    results = _run_one(runner, code)
    assert all(expected in e for e in _errors(results)), _errors(results)


@pytest.mark.parametrize(("code", "expected"), [
    ("import os\nos.fork()", "ImportError: import of 'os' is not allowed"),
    ("import subprocess", "ImportError: import of 'subprocess' is not allowed"),
    ("pd.io.common.os.fork()", "PermissionError: os.fork is not allowed in scanners at line 1"),
    ("pd.io.common.os.system('id')", "PermissionError: os.system is not allowed"),
    (ESCAPE + "for _ in range(100):\n    posix.fork()", "Resource temporarily unavailable at line 13"),
])
def test_run_fork_attempts_are_contained(runner, code, expected):
    results = _run_one(runner, code + "\nsignal = 'BUY'")
    assert all(expected in e for e in _errors(results)), _errors(results)
    assert runner.run("signal = 'BUY'", {}, {"S00": UNIVERSE["S00"]})[0].signal == "BUY"


@pytest.mark.parametrize("code", ["x = np.ones(10 * 1024**3 // 8)", "x = bytearray(10 * 1024**3)"])
def test_run_huge_allocation_fails_symbol_with_memory_message(runner, code):
    results = _run_one(runner, code + "\nsignal = 'BUY'")
    assert _errors(results) == ["memory limit of 1024 MB exceeded at line 1"] * 2
    assert runner.run("x = np.ones(1000)\nsignal = 'BUY'", {}, {"S00": UNIVERSE["S00"]})[0].signal == "BUY"


def test_run_endless_loop_fails_only_that_symbol(runner):
    code = "if symbol == 'S03':\n    while True:\n        pass\nsignal = 'BUY'"
    results = runner.run(code, {}, dict(list(UNIVERSE.items())[:8]))
    by_symbol = {r.symbol: r for r in results}
    assert by_symbol["S03"].error == f"time limit of {TIMEOUT_S:g} s exceeded at line 2"
    assert all(r.signal == "BUY" and r.error is None for s, r in by_symbol.items() if s != "S03")


def test_run_loop_stuck_in_c_is_killed_and_rest_of_batch_rerun(runner):
    # sum() over a range never returns to the eval loop, so only the parent's watchdog can stop it.
    code = "if symbol == 'S01':\n    x = sum(range(10**12))\nsignal = 'SELL'"
    results = runner.run(code, {}, dict(list(UNIVERSE.items())[:5]))
    by_symbol = {r.symbol: r for r in results}
    assert by_symbol["S01"].error == f"time limit of {TIMEOUT_S:g} s exceeded (worker stopped)"
    assert all(r.signal == "SELL" for s, r in by_symbol.items() if s != "S01")


def test_run_worker_exit_fails_only_that_symbol(runner):
    code = ESCAPE + "if symbol == 'S02':\n    posix._exit(3)\nsignal = 'BUY'"
    results = runner.run(code, {}, dict(list(UNIVERSE.items())[:6]))
    by_symbol = {r.symbol: r for r in results}
    assert by_symbol["S02"].error == "worker exited with code 3"
    assert all(r.signal == "BUY" for s, r in by_symbol.items() if s != "S02")


def test_scan_with_one_endless_symbol_finishes_before_deadline():
    code = "if symbol == 'S10':\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass\nsignal = 'BUY'"
    box: dict = {}
    with ScannerRunner(workers=2, per_symbol_timeout_s=TIMEOUT_S, grace_s=0.5) as fresh:
        thread = threading.Thread(target=lambda: box.setdefault("results", fresh.run(code, {}, UNIVERSE)))
        thread.start()
        deadline = time.monotonic() + 60
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.2)
        assert not thread.is_alive(), "scan did not finish within 60 s"
    results = box["results"]
    assert len(results) == len(UNIVERSE)
    assert "time limit" in {r.symbol: r for r in results}["S10"].error
    assert sum(r.signal == "BUY" for r in results) == len(UNIVERSE) - 1


def test_run_cancel_stops_within_a_second_and_runner_stays_usable(runner):
    code = ("import datetime\nstart = datetime.datetime.now()\n"
            "while (datetime.datetime.now() - start).total_seconds() < 0.25:\n    pass\nsignal = 'BUY'")
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(symbol, done, total):
        if done == 2 and not cancel.is_set():
            cancel.set()
            cancelled_at.append(time.monotonic())

    results = runner.run(code, {}, UNIVERSE, on_progress=on_progress, cancel=cancel)
    returned_at = time.monotonic()
    assert 2 <= len(results) < len(UNIVERSE)
    assert returned_at - cancelled_at[0] < 3  # generous: "within a second" on a loaded machine
    assert runner.run("signal = 'BUY'", {}, {"S00": UNIVERSE["S00"]})[0].signal == "BUY"


def test_runner_rejects_memory_limit_near_4_gib():
    with pytest.raises(ConfigError, match="memory_limit_mb 4096"):
        ScannerRunner(memory_limit_mb=4096)
