"""Values and ports of hosted Python strategies (3-python-strategies-api.md).

A hosted strategy is a user's uploaded script run as its own OS process. The service
(``services/pystrategies.py``) decides; the ports below touch the outside world: the database
row (:class:`StrategyStore`), the script, work and log files (:class:`StrategyFiles`) and the
processes (:class:`ProcessRunner`). Times are aware UTC; IST appears only in messages, log
lines and schedule times (``"09:15"`` is IST).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()


class StrategyStatus(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    ERROR = "error"  # the last run ended on its own with a non-zero exit (or a signal)


@dataclass(frozen=True)
class HostedStrategy:
    """One uploaded strategy script and its process state (a database row, not the script)."""

    id: str  # uuid4 text
    owner_id: int
    name: str
    file_name: str  # the uploaded file's name, for exports
    status: StrategyStatus
    created_at: datetime
    modified_at: datetime
    pid: int | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    exit_code: int | None = None
    exit_reason: str | None = None
    is_scheduled: bool = False
    schedule_start: str | None = None  # HH:MM IST
    schedule_stop: str | None = None  # HH:MM IST
    schedule_days: tuple[str, ...] = ()
    env_regular: Mapping[str, str] = field(default_factory=dict)
    env_secure: Mapping[str, str] = field(default_factory=dict)  # name -> sealed value, never plaintext

    @property
    def is_running(self) -> bool:
        return self.status is StrategyStatus.RUNNING


class StrategyStore(Protocol):
    """Persistence of hosted strategies (one row each)."""

    def add(self, strategy: HostedStrategy) -> HostedStrategy: ...
    def get(self, strategy_id: str) -> HostedStrategy | None: ...
    def list(self, owner_id: int | None = None) -> list[HostedStrategy]: ...
    def update(self, strategy_id: str, values: dict[str, Any]) -> HostedStrategy: ...
    def delete(self, strategy_id: str) -> None: ...


@dataclass(frozen=True)
class LogFile:
    name: str
    size_bytes: int
    modified_at: datetime


class StrategyFiles(Protocol):
    """Scripts, working directories and log files of hosted strategies on disk."""

    def write_script(self, owner_id: int, strategy_id: str, content: bytes) -> Path: ...
    def read_script(self, owner_id: int, strategy_id: str) -> bytes: ...
    def script_path(self, owner_id: int, strategy_id: str) -> Path: ...
    def workdir(self, owner_id: int, strategy_id: str) -> Path: ...
    def new_log(self, owner_id: int, strategy_id: str, started_at: datetime) -> Path: ...
    def log_files(self, owner_id: int, strategy_id: str) -> list[LogFile]: ...
    def read_log(self, owner_id: int, strategy_id: str, name: str | None, lines: int) -> tuple[str | None, str]: ...
    def clear_logs(self, owner_id: int, strategy_id: str, active: Path | None) -> tuple[int, int]: ...
    def remove(self, owner_id: int, strategy_id: str) -> None: ...


@dataclass(frozen=True)
class ProcessLimits:
    """Per-process resource limits (RLIMIT_AS, RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_FSIZE)."""

    memory_mb: int = 1024
    cpu_seconds: int = 8 * 3600
    open_files: int = 256
    file_size_mb: int = 1024


@dataclass(frozen=True)
class LaunchSpec:
    """What to run: ``key`` names the process (the strategy id)."""

    key: str
    script: Path
    cwd: Path
    env: Mapping[str, str] = field(repr=False)  # holds opened secrets: never logged
    log_path: Path
    limits: ProcessLimits
    header: tuple[str, ...] = ()  # lines written to the log before the script's output
    owner_id: int | None = None  # whose strategy: a root server runs it under that user's own uid


@dataclass(frozen=True)
class ProcessExit:
    """How a process ended: ``requested`` when it was stopped on purpose (``reason`` says why)."""

    key: str
    pid: int
    exit_code: int | None  # negative: killed by that signal
    ended_at: datetime
    requested: bool
    reason: str  # a human sentence: "exited with code 0", "memory limit of 1024 MiB exceeded", ...


ExitCallback = Callable[[ProcessExit], None]
LineCallback = Callable[[str, str], None]  # (key, line) for every output line


class ProcessRunner(Protocol):
    """Launch, watch and stop strategy processes (each in its own session and process group)."""

    def launch(self, spec: LaunchSpec, on_exit: ExitCallback, on_line: LineCallback | None = None, *,
               on_started: Callable[[int], None] | None = None) -> int:
        """Start the process; ``on_started(pid)`` runs before it is watched, so ``on_exit`` always comes after."""
        ...

    def terminate(self, key: str, reason: str, grace_s: float) -> ProcessExit | None: ...
    def is_running(self, key: str) -> bool: ...
    def stats(self, key: str) -> dict[str, float] | None: ...
    def reap_orphan(self, pid: int, script: Path, started_at: datetime | None) -> bool: ...
    def log_path(self, key: str) -> Path | None: ...

    def isolation(self, owner_id: int | None) -> dict[str, Any]:
        """How the processes of ``owner_id`` are isolated: ``uid``, ``dropped_privileges``, ..."""
        ...
