"""ProcessLauncher: the ProcessRunner port on ``subprocess`` (Linux/POSIX).

Each strategy is ``python -u -I -X utf8 <script>`` started through ``limited_exec.py`` (which
sets RLIMIT_AS, RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_CORE, then execs), in its own
session and process group (``start_new_session``), with cwd its work directory and an
environment of a minimal base plus the strategy's variables (HOME and TMPDIR are the work
directory). When the server is root, ``limited_exec.py`` also drops the process to the uid/gid
derived from the strategy's owner (see :mod:`.isolation`) before the exec; the work directory is
then owned by that uid (mode 0700). The child never holds the log file: only the server writes it.
stdout and stderr are one pipe; a reader thread prefixes every line with the IST time and
appends it to the run's log file. A watcher thread waits for the process to end (without reaping it first, so the group id
cannot be reused meanwhile), kills what is left of its group, writes the log footer and
reports a :class:`ProcessExit`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from quantdesk.adapters.processes.isolation import isolation_report, privileged, strategy_ids
from quantdesk.services.pystrategies_ports import (
    IST,
    ExitCallback,
    LaunchSpec,
    LineCallback,
    ProcessExit,
)

log = logging.getLogger(__name__)

LIMITED_EXEC = Path(__file__).with_name("limited_exec.py")
MAX_LINE_BYTES = 16 * 1024
TAIL_LINES = 40
MAX_LOG_BYTES = 256 * 1024 * 1024  # per run; the parent writes the log, so the child's RLIMIT_FSIZE cannot cap it


def _stamp(at: datetime) -> str:
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class _Proc:
    spec: LaunchSpec
    popen: subprocess.Popen
    log_file: BinaryIO
    stop_reason: str | None = None
    killed: bool = False
    exit: ProcessExit | None = None
    exited: threading.Event = field(default_factory=threading.Event)  # the leader has ended
    done: threading.Event = field(default_factory=threading.Event)  # on_exit has run
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    truncated: bool = False
    ps: psutil.Process | None = None  # kept so CPU % is measured between two calls
    cpu_s: float = 0.0  # user + system CPU seconds at exit

    @property
    def pid(self) -> int:
        return self.popen.pid

    def write(self, text: str, *, always: bool = False) -> None:
        with self.write_lock:
            if self.closed:
                return
            with contextlib.suppress(OSError):
                # appends go to the end, so tell() is the file's size (a cleared log starts again at 0)
                if not always and self.log_file.tell() > MAX_LOG_BYTES:
                    if not self.truncated:
                        self.truncated = True
                        self.log_file.write(f"=== log exceeds {MAX_LOG_BYTES // 1024**2} MiB: further output "
                                            "dropped (clear the logs to resume) ===\n".encode())
                    return
                self.truncated = False
                self.log_file.write(text.encode("utf-8", errors="replace"))

    def close_log(self) -> None:
        with self.write_lock:
            self.closed = True
            with contextlib.suppress(OSError):
                self.log_file.close()


class ProcessLauncher:
    """Launch, watch and stop strategy processes; one per key."""

    def __init__(self, python: str = sys.executable, *, base_path: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), isolate: bool | None = None):
        self.python = python
        self.isolate = privileged() if isolate is None else isolate  # run strategies under their own uid
        self.base_path = base_path or os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
        self._now = now
        self._procs: dict[str, _Proc] = {}
        self._guard = threading.Lock()

    def base_env(self, cwd: Path) -> dict[str, str]:
        """The minimal environment every strategy gets (the server's own variables are not passed)."""
        return {
            "PATH": self.base_path, "HOME": str(cwd), "TMPDIR": str(cwd), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8",
            # thread pools of numeric libraries reserve address space per thread; one keeps RLIMIT_AS useful
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }

    def run_as(self, spec: LaunchSpec) -> tuple[int, int] | None:
        """(uid, gid) the process runs as, or None when it keeps the server's (not root)."""
        return strategy_ids(spec.owner_id) if self.isolate else None

    def isolation(self, owner_id: int | None) -> dict[str, Any]:
        """Which protections apply to the strategies of ``owner_id`` (reported in their status)."""
        return isolation_report(owner_id, self.isolate)

    def argv(self, spec: LaunchSpec) -> list[str]:
        limits = spec.limits
        drop: list[str] = []
        ids = self.run_as(spec)
        if ids is not None:
            drop = ["--uid", str(ids[0]), "--gid", str(ids[1])]
            for path in self._reach(spec):
                drop += ["--reach", path]
        return [self.python, "-I", "-S", str(LIMITED_EXEC), str(limits.memory_mb), str(limits.cpu_seconds),
                str(limits.open_files), str(limits.file_size_mb), *drop, "--",
                self.python, "-u", "-I", "-X", "utf8", str(spec.script)]

    def _reach(self, spec: LaunchSpec) -> list[str]:
        """What the unprivileged process must reach: the interpreter, its installation, the script, its cwd."""
        python = os.path.realpath(self.python)
        paths = [self.python, python, str(spec.script), str(spec.cwd)]
        if python == os.path.realpath(sys.executable):
            paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
        else:
            paths.append(os.path.dirname(os.path.dirname(python)))
        return list(dict.fromkeys(paths))

    # ---- the port ----------------------------------------------------------------------
    def launch(self, spec: LaunchSpec, on_exit: ExitCallback, on_line: LineCallback | None = None, *,
               on_started: Callable[[int], None] | None = None) -> int:
        with self._guard:
            if spec.key in self._procs:
                raise RuntimeError(f"process {spec.key} is already running")
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            spec.cwd.mkdir(parents=True, exist_ok=True)
            ids = self.run_as(spec)
            if ids is not None:
                _own_workdir(spec.cwd, *ids)
            log_file = open(spec.log_path, "ab", buffering=0)  # noqa: SIM115 - closed by the watcher
            try:
                os.fchmod(log_file.fileno(), 0o600)
                if spec.header:
                    log_file.write(("\n".join(spec.header) + "\n").encode("utf-8"))
                env = {**self.base_env(spec.cwd), **{str(k): str(v) for k, v in spec.env.items()}}
                popen = subprocess.Popen(  # noqa: S603 - our interpreter, the user's script as a file argument
                    self.argv(spec), cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
                del env
            except BaseException:
                log_file.close()
                raise
            # keep no copy of the environment: secure variables exist in plaintext only in the child
            proc = _Proc(replace(spec, env={}), popen, log_file)
            self._procs[spec.key] = proc
        if on_started is not None:
            try:
                on_started(popen.pid)
            except BaseException:
                _killpg(popen.pid, signal.SIGKILL)
                popen.wait()
                proc.close_log()
                with self._guard:
                    self._procs.pop(spec.key, None)
                raise
        reader = threading.Thread(target=self._read, args=(proc, on_line), daemon=True,
                                  name=f"pystrategy-out-{spec.key[:8]}")
        reader.start()
        threading.Thread(target=self._watch, args=(proc, reader, on_exit), daemon=True,
                         name=f"pystrategy-wait-{spec.key[:8]}").start()
        return popen.pid

    def terminate(self, key: str, reason: str, grace_s: float) -> ProcessExit | None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; return how it ended (None if unknown)."""
        with self._guard:
            proc = self._procs.get(key)
        if proc is None:
            return None
        if proc.stop_reason is None:
            proc.stop_reason = reason
        if not proc.exited.is_set():
            _killpg(proc.pid, signal.SIGTERM)
            if not proc.exited.wait(grace_s):
                proc.killed = True
                _killpg(proc.pid, signal.SIGKILL)
        if not proc.done.wait(grace_s + 30):
            log.error("process %s (pid %s) did not finish after SIGKILL", key, proc.pid)
        return proc.exit

    def is_running(self, key: str) -> bool:
        with self._guard:
            return key in self._procs

    def log_path(self, key: str) -> Path | None:
        with self._guard:
            proc = self._procs.get(key)
        return proc.spec.log_path if proc else None

    def stats(self, key: str) -> dict[str, float] | None:
        """Resident memory (MiB), CPU % since the previous call and threads of the running process."""
        with self._guard:
            proc = self._procs.get(key)
        if proc is None:
            return None
        try:
            p = proc.ps = proc.ps or psutil.Process(proc.pid)
            with p.oneshot():
                return {"memory_mb": round(p.memory_info().rss / 1024**2, 2),
                        "cpu_percent": float(p.cpu_percent(interval=None)), "threads": float(p.num_threads())}
        except psutil.Error:
            return None

    def reap_orphan(self, pid: int, script: Path, started_at: datetime | None) -> bool:
        """Terminate a strategy process left by a previous server run, if it provably is one.

        It must run ``script``, lead its own process group and have started when recorded
        (within 60 s), so a reused PID of an unrelated process is never touched.
        """
        if pid <= 1 or pid == os.getpid():
            return False
        try:
            p = psutil.Process(pid)
            if str(script) not in p.cmdline() or os.getpgid(pid) != pid:
                return False
            if started_at is not None and abs(p.create_time() - started_at.timestamp()) > 60:
                return False
            _killpg(pid, signal.SIGTERM)
            _, alive = psutil.wait_procs([p], timeout=5)
            if alive:
                _killpg(pid, signal.SIGKILL)
                psutil.wait_procs(alive, timeout=5)
            return True
        except (psutil.Error, OSError):
            return False

    # ---- threads -----------------------------------------------------------------------
    def _read(self, proc: _Proc, on_line: LineCallback | None) -> None:
        stream = proc.popen.stdout
        if stream is None:
            return
        try:
            for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                proc.tail.append(line)
                proc.write(f"{_stamp(self._now())} {line}\n")
                if on_line is not None:
                    try:
                        on_line(proc.spec.key, line)
                    except Exception:  # a listener must not stop the log capture
                        log.exception("log listener of %s failed", proc.spec.key)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def _watch(self, proc: _Proc, reader: threading.Thread, on_exit: ExitCallback) -> None:
        pid = proc.pid
        try:
            if hasattr(os, "waitid"):
                # wait without reaping: the zombie keeps the group id ours while the rest is killed
                with contextlib.suppress(ChildProcessError, InterruptedError):
                    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            else:
                proc.popen.wait()
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()  # still readable on the unreaped zombie
                proc.cpu_s = times.user + times.system
            proc.exited.set()
            _killpg(pid, signal.SIGKILL)  # whatever the script left in its group
            code = proc.popen.wait()
            reader.join(5)  # a grandchild that left the group may still hold the pipe; do not wait for it
            ended = ProcessExit(key=proc.spec.key, pid=pid, exit_code=code, ended_at=self._now(),
                                requested=proc.stop_reason is not None, reason=self._reason(proc, code))
            proc.write(f"\n=== Strategy Stopped at {_stamp(ended.ended_at)} IST: {ended.reason} "
                       f"(exit code {code}) ===\n", always=True)
            proc.close_log()
            proc.exit = ended
            with self._guard:
                self._procs.pop(proc.spec.key, None)
            try:
                on_exit(ended)
            except Exception:
                log.exception("exit listener of %s failed", proc.spec.key)
        finally:
            proc.exited.set()
            proc.done.set()

    def _reason(self, proc: _Proc, code: int) -> str:
        limits = proc.spec.limits
        if proc.stop_reason is not None:
            return proc.stop_reason + (" (killed after the grace period)" if proc.killed else "")
        if code == 0:
            return "exited with code 0"
        if any("MemoryError" in line for line in proc.tail):
            return f"memory limit of {limits.memory_mb} MiB exceeded (MemoryError)"
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and proc.cpu_s >= limits.cpu_seconds):
            return f"CPU time limit of {limits.cpu_seconds} s exceeded"
        if code == -signal.SIGXFSZ:
            return f"file size limit of {limits.file_size_mb} MiB exceeded"
        if code < 0:
            return f"killed by signal {_signal_name(-code)}"
        return f"exited with code {code}"


def _own_workdir(path: Path, uid: int, gid: int) -> None:
    """Give the work directory (mode 0700) and, the first time, what it holds to the strategy's uid.

    Its parent is the server's, so the directory itself cannot be swapped; its content can be the
    strategy's own, so the walk uses directory fds and never follows a symlink.
    """
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"work directory {path} is not a directory")
    if (st.st_uid, st.st_gid) != (uid, gid):
        for _root, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, 0o700)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
