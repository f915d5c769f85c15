"""Hosted Python strategies: upload, edit, run as OS processes, IST schedules, logs, env vars.

Each strategy is a user's script run as its own process (never inside the server) through the
injected :class:`ProcessRunner`, with resource limits, a minimal environment plus the
strategy's own variables (secure ones sealed at rest and opened only to start it) and its
output captured into timestamped (IST) log files.

Lifecycle decisions:

* a strategy runs only while the server runs: :meth:`PyStrategyService.close` stops every
  running strategy (``exit_reason`` "server shutdown") and a restart does not start them again,
  except scheduled strategies whose window (start..stop time on a scheduled day) is open;
* on start, rows still marked running belong to a previous server process; they are marked
  stopped. Their PID is never adopted; an orphan that is provably ours (same script, own
  session, started when recorded) is terminated so it cannot run twice;
* schedules fire at ``start_time``/``stop_time`` IST on the chosen weekdays. A scheduled start
  is skipped on NSE exchange holidays (the holiday set of the injected session rules); a
  scheduled stop always happens. A stop time at or before the start time stops the next day.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import platform
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from quantdesk.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    QuantdeskError,
    UnsupportedMediaError,
)
from quantdesk.services.accounts import Principal
from quantdesk.services.fluxscan_ports import JobScheduler
from quantdesk.services.pystrategies_ports import (
    DAYS,
    IST,
    HostedStrategy,
    LaunchSpec,
    LogFile,
    ProcessExit,
    ProcessLimits,
    ProcessRunner,
    StrategyFiles,
    StrategyStatus,
    StrategyStore,
)
from quantdesk.services.topics import user_topic

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "pystrategies"
LOG_CHANNEL = "pystrategies_log"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
MAX_NAME = 100
MAX_ENV_VARS = 100
MAX_ENV_VALUE = 32 * 1024
LOG_EVENTS_PER_S = 50


class StrategyRunningError(ConflictError):
    """The strategy is running and the action needs it stopped (start again, delete: 409)."""

    code = "STRATEGY_RUNNING"


class StrategyLockedError(StrategyRunningError):
    """Edits (script, schedule, env vars) are refused while running: 400 as the reference says."""

    status = 400


class StrategyNotRunningError(InvalidInputError):
    code = "STRATEGY_NOT_RUNNING"


class ProcessError(QuantdeskError):
    """The process could not be started or stopped."""

    code = "PROCESS_ERROR"
    status = 500


@dataclass(frozen=True)
class PyStrategyConfig:
    """Limits of hosted strategies: script size, process limits, the stop grace period."""

    max_script_bytes: int = 10 * 1024 * 1024
    limits: ProcessLimits = field(default_factory=ProcessLimits)
    stop_grace_s: float = 5.0


@dataclass(frozen=True)
class LogView:
    files: list[LogFile]
    current: str | None
    text: str


@dataclass(frozen=True)
class StrategyView:
    """A strategy with what is known about its process right now."""

    strategy: HostedStrategy
    next_start_at: datetime | None
    next_stop_at: datetime | None
    stats: dict[str, float] | None
    isolation: dict[str, Any] | None = None  # which protections apply to its process (uid, dropped privileges)


def ist_clock(at: datetime) -> str:
    """``09:15:00 IST``."""
    return at.astimezone(IST).strftime("%H:%M:%S IST")


def ist_stamp(at: datetime) -> str:
    """``2024-01-01 09:15:00 IST``."""
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S IST")


def check_script(file_name: str | None, content: bytes, max_bytes: int) -> str:
    """The script's text: a ``.py`` name, at most ``max_bytes``, UTF-8, valid Python syntax.

    Raises UnsupportedMediaError (415) for another extension, PayloadTooLargeError (413) past
    the size limit, InvalidInputError (400) for non-UTF-8 text or a syntax error (with its line).
    """
    name = (file_name or "").strip()
    if not name:
        raise InvalidInputError("file is required: send a .py file in the multipart field 'file'",
                                field="file", code="INVALID_FILE")
    if not name.lower().endswith(".py"):
        raise UnsupportedMediaError(f"file {name!r} is not a Python file; only .py files are accepted",
                                    field="file", code="INVALID_FILE")
    return check_source(content, max_bytes)


def check_source(content: bytes, max_bytes: int) -> str:
    """Decode and syntax-check script bytes (see :func:`check_script`)."""
    if len(content) > max_bytes:
        raise PayloadTooLargeError(f"file of {len(content)} bytes exceeds the {max_bytes}-byte limit",
                                   field="file", code="INVALID_FILE")
    if not content.strip():
        raise InvalidInputError("file is empty; upload a Python script", field="file", code="INVALID_FILE")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"file is not UTF-8 text (bad byte at offset {exc.start})", field="file",
                                code="INVALID_FILE") from None
    if "\x00" in text:
        raise InvalidInputError("file contains NUL bytes; upload Python source text", field="file",
                                code="INVALID_FILE")
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise InvalidInputError(f"Python syntax error at line {exc.lineno}: {exc.msg}", field="file",
                                code="INVALID_FILE", details={"line": exc.lineno}) from None
    return text


def parse_hhmm(value: Any, name: str) -> time:
    """``"09:15"`` (IST) as a time; InvalidInputError naming ``name`` otherwise."""
    match = HHMM.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInputError(f"{name} {value!r} is not a time in HH:MM format (IST), e.g. 09:15",
                                field=name, code="SCHEDULE_ERROR")
    return time(int(match.group(1)), int(match.group(2)))


def parse_days(days: Any) -> tuple[str, ...]:
    """Weekday names (mon..sun, any case, full names accepted) in week order, without repeats."""
    if not isinstance(days, list | tuple) or not days:
        raise InvalidInputError("days must be a non-empty list of weekdays (mon, tue, wed, thu, fri, sat, sun)",
                                field="days", code="SCHEDULE_ERROR")
    chosen = set()
    for day in days:
        key = day.strip().lower()[:3] if isinstance(day, str) else None
        if key not in DAYS or (isinstance(day, str) and len(day.strip()) > 3
                               and not _full_day(day.strip().lower())):
            raise InvalidInputError(f"day {day!r} is not a weekday; use mon, tue, wed, thu, fri, sat or sun",
                                    field="days", code="SCHEDULE_ERROR")
        chosen.add(key)
    return tuple(d for d in DAYS if d in chosen)


def _full_day(text: str) -> bool:
    return text in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def next_start_after(after: datetime, start: time, days: Iterable[str], holidays: frozenset[date]) -> datetime | None:
    """The first scheduled start strictly after ``after`` (aware UTC), skipping ``holidays``."""
    chosen = set(days)
    day = after.astimezone(IST).date()
    for offset in range(0, 3660):
        candidate_day = day + timedelta(days=offset)
        if DAYS[candidate_day.weekday()] in chosen and candidate_day not in holidays:
            at = datetime.combine(candidate_day, start, tzinfo=IST)
            if at > after:
                return at.astimezone(UTC)
    return None


def _stop_of(start_day: date, start: time, stop: time) -> datetime:
    stop_day = start_day + timedelta(days=1) if stop <= start else start_day
    return datetime.combine(stop_day, stop, tzinfo=IST).astimezone(UTC)


def next_stop_after(after: datetime, start: time, stop: time, days: Iterable[str]) -> datetime | None:
    """The first scheduled stop strictly after ``after`` (every scheduled day, holidays too)."""
    chosen = set(days)
    day = after.astimezone(IST).date() - timedelta(days=1)
    for offset in range(0, 15):
        start_day = day + timedelta(days=offset)
        if DAYS[start_day.weekday()] in chosen:
            at = _stop_of(start_day, start, stop)
            if at > after:
                return at
    return None


def in_window(now: datetime, start: time, stop: time, days: Iterable[str], holidays: frozenset[date]) -> bool:
    """Whether ``now`` lies inside a scheduled start..stop window (a holiday has none)."""
    chosen = set(days)
    today = now.astimezone(IST).date()
    for start_day in (today, today - timedelta(days=1)):
        if DAYS[start_day.weekday()] not in chosen or start_day in holidays:
            continue
        opens = datetime.combine(start_day, start, tzinfo=IST).astimezone(UTC)
        if opens <= now < _stop_of(start_day, start, stop):
            return True
    return False


class PyStrategyService:
    """Every use case of hosted strategies; each strategy belongs to one user (404 for the others)."""

    def __init__(self, store: StrategyStore, files: StrategyFiles, runner: ProcessRunner, scheduler: JobScheduler,
                 secrets: Any, bus: Any, *, holidays: frozenset[date] = frozenset(),
                 config: PyStrategyConfig | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.files = files
        self.runner = runner
        self.scheduler = scheduler
        self.secrets = secrets  # SecretBox: seal(plain) / open(sealed)
        self.bus = bus
        self.holidays = holidays
        self.config = config or PyStrategyConfig()
        self._now = now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._owners: dict[str, tuple[int, str]] = {}  # running key -> (owner id, name), for log events
        self._log_windows: dict[str, tuple[int, int]] = {}  # key -> (second, lines published in it)
        self.scheduler_running = False

    # ---- lifecycle ---------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish events on ``loop`` (the server's event loop)."""
        self._loop = loop

    def start(self) -> None:
        """Recover state left by a previous server process and register every schedule."""
        now = self._now()
        for strategy in self.store.list():
            if strategy.is_running and not self.runner.is_running(strategy.id):
                reaped = strategy.pid is not None and self.runner.reap_orphan(
                    strategy.pid, self.files.script_path(strategy.owner_id, strategy.id), strategy.started_at)
                reason = ("orphaned process of a previous server run terminated" if reaped
                          else "server restarted; the process was gone")
                self.store.update(strategy.id, {"status": StrategyStatus.STOPPED, "pid": None, "stopped_at": now,
                                                "exit_reason": reason})
        self.scheduler.start()
        self.scheduler_running = True
        for strategy in self.store.list():
            if strategy.is_scheduled:
                self._register(strategy)
                self._catch_up(strategy, now)

    def close(self) -> None:
        """Stop the schedules and every running strategy (they are not restarted on the next start)."""
        if self.scheduler_running:
            self.scheduler.shutdown()
            self.scheduler_running = False
        running = [s for s in self.store.list() if s.is_running]
        if not running:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(running))) as pool:
            for strategy in running:
                pool.submit(self._stop_quietly, strategy, "server shutdown")

    def _stop_quietly(self, strategy: HostedStrategy, reason: str) -> None:
        try:
            self._stop(strategy, reason)
        except Exception:  # shutdown must go on for the other strategies
            log.exception("stopping strategy %s at shutdown failed", strategy.id)

    # ---- queries -----------------------------------------------------------------------
    def strategy_of(self, principal: Principal, strategy_id: str) -> HostedStrategy:
        """One of the caller's strategies (NotFoundError ``STRATEGY_NOT_FOUND`` otherwise)."""
        strategy = self.store.get(strategy_id) if _is_uuid(strategy_id) else None
        if strategy is None or strategy.owner_id != principal.user_id:
            raise NotFoundError("strategy", strategy_id, code="STRATEGY_NOT_FOUND")
        return strategy

    def list_strategies(self, principal: Principal) -> list[HostedStrategy]:
        """The caller's strategies, newest first."""
        return self.store.list(principal.user_id)

    def view(self, strategy: HostedStrategy) -> StrategyView:
        """A strategy with its next scheduled start/stop and its process figures."""
        next_start = next_stop = None
        if strategy.is_scheduled and strategy.schedule_start:
            now = self._now()
            start = parse_hhmm(strategy.schedule_start, "start_time")
            next_start = next_start_after(now, start, strategy.schedule_days, self.holidays)
            if strategy.schedule_stop:
                next_stop = next_stop_after(now, start, parse_hhmm(strategy.schedule_stop, "stop_time"),
                                            strategy.schedule_days)
        stats = self.runner.stats(strategy.id) if strategy.is_running else None
        return StrategyView(strategy, next_start, next_stop, stats, self.runner.isolation(strategy.owner_id))

    def status(self, principal: Principal) -> dict[str, Any]:
        """Counts, scheduler state, the IST time and the caller's strategies."""
        views = [self.view(s) for s in self.list_strategies(principal)]
        return {
            "running": sum(1 for v in views if v.strategy.is_running),
            "total": len(views),
            "scheduler_running": self.scheduler_running,
            "current_ist_time": ist_clock(self._now()),
            "platform": platform.system().lower(),
            "strategies": views,
        }

    def script_text(self, principal: Principal, strategy_id: str) -> tuple[HostedStrategy, str]:
        """The strategy and its script's text."""
        strategy = self.strategy_of(principal, strategy_id)
        content = self.files.read_script(strategy.owner_id, strategy.id)
        return strategy, content.decode("utf-8", errors="replace")

    def export(self, principal: Principal, strategy_id: str) -> tuple[str, bytes]:
        """The script's file name and bytes, for a download."""
        strategy = self.strategy_of(principal, strategy_id)
        return strategy.file_name, self.files.read_script(strategy.owner_id, strategy.id)

    def logs(self, principal: Principal, strategy_id: str, *, name: str | None = None,
             lines: int = 500) -> tuple[HostedStrategy, LogView]:
        """The strategy's log files (newest first) and the last ``lines`` lines of one (the latest by default)."""
        strategy = self.strategy_of(principal, strategy_id)
        if not 1 <= lines <= 100_000:
            raise InvalidInputError(f"lines {lines} must be from 1 to 100000", field="lines")
        files = self.files.log_files(strategy.owner_id, strategy.id)
        if name is not None and name not in {f.name for f in files}:
            raise NotFoundError("log file", name)
        current, text = self.files.read_log(strategy.owner_id, strategy.id, name, lines)
        return strategy, LogView(files, current, text)

    def env(self, principal: Principal, strategy_id: str) -> tuple[dict[str, str], list[str]]:
        """Regular variables with values and the names of secure ones (their values are never returned)."""
        strategy = self.strategy_of(principal, strategy_id)
        return dict(strategy.env_regular), sorted(strategy.env_secure)

    # ---- commands ----------------------------------------------------------------------
    def upload(self, principal: Principal, *, name: str | None, file_name: str | None,
               content: bytes) -> HostedStrategy:
        """Store a new strategy script for the caller (validated: see :func:`check_script`)."""
        display = _check_name(name)
        check_script(file_name, content, self.config.max_script_bytes)
        now = self._now()
        strategy = HostedStrategy(id=str(uuid.uuid4()), owner_id=principal.user_id, name=display,
                                  file_name=_safe_file_name(file_name or "strategy.py"),
                                  status=StrategyStatus.STOPPED, created_at=now, modified_at=now)
        self.files.write_script(principal.user_id, strategy.id, content)
        try:
            return self.store.add(strategy)
        except Exception:
            self.files.remove(principal.user_id, strategy.id)
            raise

    def save(self, principal: Principal, strategy_id: str, content: Any) -> datetime:
        """Replace the script's text (refused while running); return when it was saved."""
        if not isinstance(content, str):
            raise InvalidInputError("content must be the script's text", field="content", code="INVALID_FILE")
        with self._lock(strategy_id):
            strategy = self.strategy_of(principal, strategy_id)
            if strategy.is_running:
                raise StrategyLockedError("strategy is running; stop it before editing its code")
            data = content.encode("utf-8")
            check_source(data, self.config.max_script_bytes)
            self.files.write_script(strategy.owner_id, strategy.id, data)
            now = self._now()
            self.store.update(strategy.id, {"modified_at": now})
            return now

    def delete(self, principal: Principal, strategy_id: str) -> None:
        """Delete a stopped strategy: its schedule, script, work directory, logs and row."""
        with self._lock(strategy_id):
            strategy = self.strategy_of(principal, strategy_id)
            if strategy.is_running or self.runner.is_running(strategy.id):
                raise StrategyRunningError("strategy is running; stop it before deleting it")
            self._unregister(strategy.id)
            self.store.delete(strategy.id)
            self.files.remove(strategy.owner_id, strategy.id)
        with self._locks_guard:
            self._locks.pop(strategy_id, None)

    def start_strategy(self, principal: Principal, strategy_id: str) -> tuple[HostedStrategy, str]:
        """Start the caller's strategy; return it and ``Strategy started with PID n at HH:MM:SS IST``."""
        strategy = self._start(self.strategy_of(principal, strategy_id), "user")
        return strategy, f"Strategy started with PID {strategy.pid} at {ist_clock(strategy.started_at)}"

    def stop_strategy(self, principal: Principal, strategy_id: str) -> tuple[HostedStrategy, str]:
        """Stop the caller's running strategy (SIGTERM to its process group, SIGKILL after the grace)."""
        strategy = self._stop(self.strategy_of(principal, strategy_id), "stopped by user")
        return strategy, f"Strategy stopped at {ist_clock(strategy.stopped_at or self._now())}"

    def schedule(self, principal: Principal, strategy_id: str, *, start_time: Any, stop_time: Any,
                 days: Any) -> HostedStrategy:
        """Set the strategy's IST schedule (refused while running) and register its next start/stop."""
        with self._lock(strategy_id):
            strategy = self.strategy_of(principal, strategy_id)
            if strategy.is_running:
                raise StrategyLockedError("strategy is running; stop it before changing its schedule")
            start = parse_hhmm(start_time, "start_time")
            stop = parse_hhmm(stop_time, "stop_time") if stop_time not in (None, "") else None
            if stop is not None and stop == start:
                raise InvalidInputError("stop_time must differ from start_time", field="stop_time",
                                        code="SCHEDULE_ERROR")
            chosen = parse_days(days)
            strategy = self.store.update(strategy.id, {
                "is_scheduled": True, "schedule_start": start.strftime("%H:%M"),
                "schedule_stop": stop.strftime("%H:%M") if stop else None, "schedule_days": list(chosen),
            })
            self._register(strategy)
            return strategy

    def unschedule(self, principal: Principal, strategy_id: str) -> HostedStrategy:
        """Remove the strategy's schedule (a running strategy keeps running)."""
        with self._lock(strategy_id):
            strategy = self.strategy_of(principal, strategy_id)
            self._unregister(strategy.id)
            return self.store.update(strategy.id, {"is_scheduled": False, "schedule_start": None,
                                                   "schedule_stop": None, "schedule_days": []})

    def set_env(self, principal: Principal, strategy_id: str, regular: Any, secure: Any) -> tuple[int, int]:
        """Replace the strategy's variables (refused while running); secure values are sealed at rest.

        A key left out keeps its set unchanged; inside ``secure_vars`` a null value keeps that
        variable's stored secret (clients never see it). Returns (regular count, secure count).
        """
        with self._lock(strategy_id):
            strategy = self.strategy_of(principal, strategy_id)
            if strategy.is_running:
                raise StrategyLockedError("strategy is running; its environment variables are read-only")
            new_regular = dict(strategy.env_regular) if regular is None else _check_vars(regular, "regular_vars")
            if secure is None:
                new_secure = dict(strategy.env_secure)
            else:
                keep = {k for k, v in (secure.items() if isinstance(secure, Mapping) else ()) if v is None}
                missing = sorted(keep - set(strategy.env_secure))
                if missing:
                    raise InvalidInputError(f"secure_vars {missing[0]!r} has no stored value to keep; send a value",
                                            field="secure_vars")
                given = _check_vars({k: v for k, v in secure.items() if v is not None}
                                    if isinstance(secure, Mapping) else secure, "secure_vars")
                new_secure = {k: strategy.env_secure[k] for k in keep}
                new_secure.update({k: self.secrets.seal(v) for k, v in given.items()})
            both = sorted(set(new_regular) & set(new_secure))
            if both:
                raise InvalidInputError(f"variable {both[0]!r} is both regular and secure; keep it in one",
                                        field="secure_vars")
            if len(new_regular) + len(new_secure) > MAX_ENV_VARS:
                raise InvalidInputError(f"at most {MAX_ENV_VARS} environment variables per strategy",
                                        field="regular_vars")
            self.store.update(strategy.id, {"env_regular": new_regular, "env_secure": new_secure})
            return len(new_regular), len(new_secure)

    def clear_logs(self, principal: Principal, strategy_id: str) -> tuple[int, int]:
        """Delete the strategy's log files (the active one of a running strategy is truncated); (count, bytes)."""
        strategy = self.strategy_of(principal, strategy_id)
        active = self.runner.log_path(strategy.id) if strategy.is_running else None
        return self.files.clear_logs(strategy.owner_id, strategy.id, active)

    # ---- internals: processes ----------------------------------------------------------
    def _lock(self, strategy_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(strategy_id, threading.Lock())

    def _start(self, strategy: HostedStrategy, trigger: str) -> HostedStrategy:
        with self._lock(strategy.id):
            strategy = self.store.get(strategy.id) or strategy
            if strategy.is_running or self.runner.is_running(strategy.id):
                raise StrategyRunningError("strategy is already running")
            started_at = self._now()
            env = {k: str(v) for k, v in strategy.env_regular.items()}
            env.update({k: self.secrets.open(v) for k, v in strategy.env_secure.items()})
            env.update(STRATEGY_ID=strategy.id, STRATEGY_NAME=strategy.name)
            spec = LaunchSpec(
                key=strategy.id, script=self.files.script_path(strategy.owner_id, strategy.id),
                cwd=self.files.workdir(strategy.owner_id, strategy.id), env=env,
                log_path=self.files.new_log(strategy.owner_id, strategy.id, started_at), limits=self.config.limits,
                header=(f"=== Strategy Started at {ist_stamp(started_at)} ===",
                        f"=== Platform: {platform.system().lower()} ===", "", "[Strategy Output]"),
                owner_id=strategy.owner_id,
            )
            recorded: dict[str, HostedStrategy] = {}

            def on_started(pid: int) -> None:  # before the watcher exists, so an instant exit comes after this
                recorded["s"] = self.store.update(strategy.id, {
                    "status": StrategyStatus.RUNNING, "pid": pid, "started_at": started_at, "stopped_at": None,
                    "exit_code": None, "exit_reason": None})
                self._owners[strategy.id] = (strategy.owner_id, strategy.name)

            try:
                pid = self.runner.launch(spec, self._on_exit, self._on_line, on_started=on_started)
            except QuantdeskError:
                raise
            except OSError as exc:
                raise ProcessError(f"strategy process could not be started: {exc.strerror or exc}") from None
            started = recorded.get("s") or self.store.get(strategy.id) or strategy
            self._emit(strategy.owner_id, EVENTS_CHANNEL, "strategy_started", {
                "id": strategy.id, "name": strategy.name, "pid": pid, "started_at": _iso_ist(started_at),
                "trigger": trigger})
            return started

    def _stop(self, strategy: HostedStrategy, reason: str) -> HostedStrategy:
        with self._lock(strategy.id):
            strategy = self.store.get(strategy.id) or strategy
            if not strategy.is_running and not self.runner.is_running(strategy.id):
                raise StrategyNotRunningError("strategy is not running")
            ended = self.runner.terminate(strategy.id, reason, self.config.stop_grace_s)
            if ended is None:  # recorded as running but no process of ours: just record the stop
                now = self._now()
                return self.store.update(strategy.id, {"status": StrategyStatus.STOPPED, "pid": None,
                                                       "stopped_at": now, "exit_reason": reason})
            return self.store.get(strategy.id) or strategy

    def _on_exit(self, ended: ProcessExit) -> None:
        """Record how a process ended (the runner's watcher calls this, also for requested stops)."""
        strategy = self.store.get(ended.key)
        self._owners.pop(ended.key, None)
        self._log_windows.pop(ended.key, None)
        if strategy is None:
            return
        status = StrategyStatus.STOPPED if ended.requested or ended.exit_code == 0 else StrategyStatus.ERROR
        self.store.update(strategy.id, {"status": status, "pid": None, "stopped_at": ended.ended_at,
                                        "exit_code": ended.exit_code, "exit_reason": ended.reason[:200]})
        self._emit(strategy.owner_id, EVENTS_CHANNEL, "strategy_stopped", {
            "id": strategy.id, "name": strategy.name, "pid": ended.pid, "status": status.value,
            "exit_code": ended.exit_code, "reason": ended.reason, "exited": not ended.requested,
            "stopped_at": _iso_ist(ended.ended_at)})

    def _on_line(self, key: str, line: str) -> None:
        owner = self._owners.get(key)
        if owner is not None and self._log_budget(key):
            self._emit(owner[0], LOG_CHANNEL, "strategy_log", {
                "id": key, "name": owner[1], "message": line, "timestamp": _iso_ist(self._now())})

    def _log_budget(self, key: str) -> bool:
        # strategy_log events are lossy: at most LOG_EVENTS_PER_S per strategy reach the bus (the file keeps all)
        second = int(self._now().timestamp())
        window, count = self._log_windows.get(key, (second, 0))
        if window != second:
            window, count = second, 0
        self._log_windows[key] = (window, count + 1)
        return count < LOG_EVENTS_PER_S

    def _emit(self, owner_id: int, channel: str, kind: str, data: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        message = {"type": kind, "data": data}
        with contextlib.suppress(RuntimeError):  # the loop is closing
            asyncio.run_coroutine_threadsafe(self.bus.publish(user_topic(owner_id, channel), message), loop)

    # ---- internals: schedules ----------------------------------------------------------
    def _register(self, strategy: HostedStrategy) -> None:
        self._unregister(strategy.id)
        if not strategy.is_scheduled or not strategy.schedule_start:
            return
        now = self._now()
        start = parse_hhmm(strategy.schedule_start, "start_time")
        sid = strategy.id
        next_start = next_start_after(now, start, strategy.schedule_days, self.holidays)
        if next_start is not None:
            self.scheduler.run_at(_start_key(sid), next_start, lambda: self.fire_start(sid))
        if strategy.schedule_stop:
            stop = parse_hhmm(strategy.schedule_stop, "stop_time")
            next_stop = next_stop_after(now, start, stop, strategy.schedule_days)
            if next_stop is not None:
                self.scheduler.run_at(_stop_key(sid), next_stop, lambda: self.fire_stop(sid))

    def _unregister(self, strategy_id: str) -> None:
        self.scheduler.cancel(_start_key(strategy_id))
        self.scheduler.cancel(_stop_key(strategy_id))

    def _catch_up(self, strategy: HostedStrategy, now: datetime) -> None:
        """Start a scheduled strategy whose window is open when the server starts."""
        if strategy.is_running or not strategy.schedule_start or not strategy.schedule_stop:
            return
        start = parse_hhmm(strategy.schedule_start, "start_time")
        stop = parse_hhmm(strategy.schedule_stop, "stop_time")
        if in_window(now, start, stop, strategy.schedule_days, self.holidays):
            self._fire(strategy.id, start=True, register=False)

    def fire_start(self, strategy_id: str) -> None:
        """Start a scheduled strategy now (the scheduler calls this) and register its next runs."""
        self._fire(strategy_id, start=True, register=True)

    def fire_stop(self, strategy_id: str) -> None:
        """Stop a scheduled strategy now (the scheduler calls this) and register its next runs."""
        self._fire(strategy_id, start=False, register=True)

    def _fire(self, strategy_id: str, *, start: bool, register: bool) -> None:
        strategy = self.store.get(strategy_id)
        if strategy is None or not strategy.is_scheduled:
            return
        try:
            if start and not strategy.is_running:
                self._start(strategy, "schedule")
            elif not start and strategy.is_running:
                self._stop(strategy, "stopped by schedule")
        except QuantdeskError as exc:
            log.warning("scheduled %s of strategy %s failed: %s", "start" if start else "stop", strategy_id,
                        exc.message)
        except Exception:  # the scheduler thread must survive one bad strategy
            log.exception("scheduled %s of strategy %s failed", "start" if start else "stop", strategy_id)
        if register:
            fresh = self.store.get(strategy_id)
            if fresh is not None:
                self._register(fresh)


def _start_key(strategy_id: str) -> str:
    return f"pystrategy-start-{strategy_id}"


def _stop_key(strategy_id: str) -> str:
    return f"pystrategy-stop-{strategy_id}"


def _iso_ist(at: datetime | None) -> str | None:
    return at.astimezone(IST).isoformat(timespec="seconds") if at else None


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (ValueError, AttributeError, TypeError):
        return False


def _check_name(name: str | None) -> str:
    display = (name or "").strip()
    if not display:
        raise InvalidInputError("name is required: a display name for the strategy", field="name")
    if len(display) > MAX_NAME or any(ord(c) < 32 for c in display):
        raise InvalidInputError(f"name must be 1 to {MAX_NAME} printable characters", field="name")
    return display


def _safe_file_name(file_name: str) -> str:
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120]
    return cleaned if cleaned.lower().endswith(".py") and len(cleaned) > 3 else "strategy.py"


def _check_vars(values: Any, name: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{name} must be an object of NAME: value", field=name)
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise InvalidInputError(f"{name} name {key!r} is not a valid variable name (letters, digits, _; "
                                    "not starting with a digit)", field=name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidInputError(f"{name} value of {key!r} must be a string", field=name)
        if "\x00" in value or len(value) > MAX_ENV_VALUE:
            raise InvalidInputError(f"{name} value of {key!r} must be text up to {MAX_ENV_VALUE} characters "
                                    "without NUL", field=name)
        out[key] = value
    return out
