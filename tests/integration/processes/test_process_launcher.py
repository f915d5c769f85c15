"""ProcessLauncher against real processes: limits, minimal env, log capture, group kill, exit reasons."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from quantdesk.adapters.processes.launcher import ProcessLauncher
from quantdesk.services.pystrategies_ports import LaunchSpec, ProcessExit, ProcessLimits

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*)$")


class Exits:
    def __init__(self):
        self.items: list[ProcessExit] = []
        self.done = threading.Event()

    def __call__(self, ended: ProcessExit) -> None:
        self.items.append(ended)
        self.done.set()


def _spec(tmp_path: Path, code: str, *, key: str = "k1", env=None, limits: ProcessLimits | None = None) -> LaunchSpec:
    script = tmp_path / f"{key}.py"
    script.write_text(code)
    return LaunchSpec(key=key, script=script, cwd=tmp_path / f"{key}-work", env=env or {},
                      log_path=tmp_path / f"{key}-logs" / "run.log", limits=limits or ProcessLimits(),
                      header=("=== header ===",))


def _output(spec: LaunchSpec) -> list[str]:
    lines = spec.log_path.read_text().splitlines()
    return [m.group(1) for line in lines if (m := STAMPED.match(line))]


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_launch_limits_env_and_cwd_are_applied(tmp_path, monkeypatch):
    monkeypatch.setenv("QD_SERVER_ONLY", "leak")
    code = (
        "import os, resource\n"
        "print('AS', resource.getrlimit(resource.RLIMIT_AS)[0] // (1024 * 1024))\n"
        "print('CPU', resource.getrlimit(resource.RLIMIT_CPU)[0])\n"
        "print('NOFILE', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "print('CWD', os.getcwd())\n"
        "print('ENV', os.environ.get('SYMBOL'), os.environ.get('QD_SERVER_ONLY'))\n"
        "print('SID', os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())\n"
    )
    spec = _spec(tmp_path, code, env={"SYMBOL": "RELIANCE"},
                 limits=ProcessLimits(memory_mb=700, cpu_seconds=123, open_files=64))
    exits = Exits()
    started = []
    pid = ProcessLauncher().launch(spec, exits, on_started=started.append)
    assert started == [pid]
    assert exits.done.wait(30)
    ended = exits.items[0]
    assert (ended.pid, ended.exit_code, ended.requested, ended.reason) == (pid, 0, False, "exited with code 0")
    out = _output(spec)
    assert out[:6] == ["AS 700", "CPU 123", "NOFILE 64", f"CWD {spec.cwd}", "ENV RELIANCE None", "SID True True"]
    text = spec.log_path.read_text()
    assert text.startswith("=== header ===\n")
    assert "=== Strategy Stopped at " in text and "IST: exited with code 0 (exit code 0) ===" in text


def test_terminate_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path):
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        "print('CHILD', child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    spec = _spec(tmp_path, code)
    exits = Exits()
    launcher = ProcessLauncher()
    pid = launcher.launch(spec, exits)
    _wait_for(lambda: any(line.startswith("CHILD ") for line in _output(spec)))
    child = int(next(line for line in _output(spec) if line.startswith("CHILD ")).split()[1])
    assert launcher.is_running("k1") and psutil.pid_exists(child)
    ended = launcher.terminate("k1", "stopped by user", grace_s=0.5)
    assert ended is not None and ended.requested and ended.exit_code == -signal.SIGKILL
    assert ended.reason == "stopped by user (killed after the grace period)"
    _wait_for(lambda: _group_gone(pid))  # killed members linger as zombies until init reaps them
    assert not psutil.pid_exists(child)
    assert not launcher.is_running("k1") and launcher.terminate("k1", "again", 0.1) is None


def test_memory_limit_exit_is_reported(tmp_path):
    spec = _spec(tmp_path, "print('allocating', flush=True)\nx = bytearray(2 * 1024 ** 3)\n",
                 limits=ProcessLimits(memory_mb=512))
    exits = Exits()
    ProcessLauncher().launch(spec, exits)
    assert exits.done.wait(30)
    ended = exits.items[0]
    assert ended.exit_code == 1 and not ended.requested
    assert ended.reason == "memory limit of 512 MiB exceeded (MemoryError)"
    assert "MemoryError" in spec.log_path.read_text()


def test_cpu_limit_exit_is_reported(tmp_path):
    spec = _spec(tmp_path, "while True:\n    pass\n", limits=ProcessLimits(cpu_seconds=1))
    exits = Exits()
    ProcessLauncher().launch(spec, exits)
    assert exits.done.wait(60)
    assert exits.items[0].reason == "CPU time limit of 1 s exceeded"


def test_reap_orphan_refuses_foreign_processes(tmp_path):
    launcher = ProcessLauncher()
    assert launcher.reap_orphan(os.getpid(), tmp_path / "x.py", datetime.now(UTC)) is False
    assert launcher.reap_orphan(1, tmp_path / "x.py", None) is False
    other = psutil.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert launcher.reap_orphan(other.pid, tmp_path / "x.py", None) is False  # not running our script
        assert other.is_running()
    finally:
        other.kill()
        other.wait()
