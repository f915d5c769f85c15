"""The job model and the ports the job service needs: a store, an executor and a resource probe.

A *job type* is a plain module-level function ``fn(ctx, **params) -> dict`` named by its
dotted path (``"quantdesk.services.jobtypes:demo_backtest"``), so that the same function runs
unchanged in a local worker process and as a Ray task. ``ctx`` is a :class:`JobContext`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class JobCancelledError(Exception):
    """Raised inside a job (by ``ctx.progress`` or ``ctx.check``) once it has been asked to stop."""


class JobContext(Protocol):
    """What a running job may do: report progress and learn that it was cancelled."""

    job_id: str

    def progress(self, pct: float, description: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """Report ``pct`` (0–100) done and optionally a new human description; raise
        :class:`JobCancelledError` when the job has been cancelled. ``detail`` (small plain JSON)
        reaches the submitting service's watcher only; it is not stored."""
        ...

    @property
    def cancelled(self) -> bool:
        """True once the job has been asked to stop (the job should return or raise soon)."""
        ...


@dataclass(frozen=True, slots=True)
class JobType:
    """A registered kind of job: its function and what one run needs of the machine.

    ``cpu_cores`` and ``ram_gb`` are estimates used for admission (and Ray's ``num_cpus`` /
    ``memory``). ``idempotent`` jobs are re-queued when the server restarts under them;
    others are failed. ``admin_only`` types can be submitted by admins only; ``internal``
    types (a FluxScan scan batch) only by services, never through the API.
    """

    name: str
    target: str
    cpu_cores: float = 1.0
    ram_gb: float = 0.5
    idempotent: bool = False
    admin_only: bool = False
    internal: bool = False
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One submitted job, as persisted. ``seq`` (given by the store) orders jobs FIFO."""

    id: str
    type: str
    owner_id: int | None
    status: JobStatus
    priority: int
    cpu_cores: float
    ram_gb: float
    params: dict[str, Any]
    created_at: datetime
    progress: float = 0.0
    description: str = ""
    reason: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    seq: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True, slots=True)
class MachineResources:
    """What the machine (or cluster) offers: cores, total and currently available RAM in GB."""

    cpu_cores: float
    total_ram_gb: float
    available_ram_gb: float


ResourceProbe = Callable[[], MachineResources]


def resolve_target(target: str) -> Callable[..., dict[str, Any]]:
    """Import the job function named ``"package.module:function"``; raise ValueError when it is not there."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"job target {target!r} must look like 'package.module:function'")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"job target {target!r} is not a function")
    return fn


class EventBus(Protocol):
    """The slice of the event bus the job service uses (publish, and subscribe for SSE)."""

    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, *patterns: str, maxsize: int = 1000, lossless: bool = False) -> Any: ...


class JobStore(Protocol):
    """Persistence port for jobs (implemented in adapters/db)."""

    def add(self, job: Job) -> Job:
        """Insert ``job`` and return it with its ``seq``."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def active(self) -> list[Job]:
        """Queued and running jobs, highest priority first, then FIFO (``seq``)."""
        ...

    def active_after(self, seq: int) -> tuple[list[Job], int]:
        """Queued and running jobs whose ``seq`` exceeds ``seq`` (FIFO), and the highest ``seq`` stored (0 if none).

        Cheap when ``seq`` is recent: it is how a service notices jobs another process submitted.
        """
        ...

    def list(self, *, owner_id: int | None = None, statuses: frozenset[JobStatus] | None = None,
             limit: int = 100) -> list[Job]:
        """Jobs newest first, optionally of one owner and some statuses."""
        ...

    def update(self, job_id: str, *, expect: frozenset[JobStatus] | None = None, expect_runner: str | None = None,
               **values: Any) -> bool:
        """Set columns of one job; with ``expect`` only when its status is one of those, with
        ``expect_runner`` only when that dispatcher runs it (compare-and-set). Return whether a row changed."""
        ...


@dataclass(frozen=True, slots=True)
class JobRun:
    """What an executor needs to run one job."""

    job_id: str
    target: str
    params: dict[str, Any]
    cpu_cores: float
    ram_gb: float


@dataclass(frozen=True, slots=True)
class ExecutorEvent:
    """Something a running job did: ``kind`` is progress, completed, failed or cancelled."""

    job_id: str
    kind: str
    progress: float | None = None
    description: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None  # a progress report's structured part, for the watcher


EventSink = Callable[[ExecutorEvent], None]


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """What the service that submitted a job hears of it: each progress report and the end.

    ``status`` is running for progress (with ``detail``, the job's own structured report) and
    terminal at the end (with ``result`` or ``error``); nothing follows a terminal update.
    """

    job_id: str
    status: JobStatus
    progress: float = 0.0
    detail: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


JobWatcher = Callable[[JobUpdate], None]


class Executor(Protocol):
    """Runs jobs away from the server's event loop and reports back through a sink.

    The sink may be called from any thread. ``cancel`` returns once the job has stopped
    (within about a second) and no further event for that job matters.
    """

    name: str

    def start(self, sink: EventSink) -> None: ...

    def submit(self, run: JobRun) -> None: ...

    def cancel(self, job_id: str) -> bool: ...

    def close(self) -> None: ...
