"""Jobs: a persisted, resource-aware task queue in front of a local or Ray executor.

A job starts only when the machine has the cores and RAM its type estimates; otherwise it
waits with a ``reason`` ("Insufficient RAM: 8.5 GB available, 12.0 GB required") and a queue
position. Higher ``priority`` goes first; within a priority the queue is FIFO and strict (a
job never overtakes an earlier one that is waiting for resources). Every change is persisted
and published on the bus topic :data:`TOPIC` as ``{"type", "owner_id", "data"}``.

While started, the service keeps the active queue (queued and running jobs) in memory and
updates it on every transition it makes; the database stays the source of truth and sees
every change. Jobs other processes submit are picked up by a cheap "anything after the
newest seq I know?" query before each submit and queue read, and the whole queue is re-read
once per dispatcher tick (which also notices jobs other processes cancelled).

*External* jobs are work a service runs itself (a FluxScan scan on the shared sandbox pool)
but that users should see in the same queue: :meth:`JobService.start_external` records one as
running at once (no admission, no reserved cores or RAM), the service reports progress and
the end through :meth:`~JobService.progress_external` and :meth:`~JobService.finish_external`,
and :meth:`~JobService.cancel` calls the service's ``on_cancel`` hook. They are persisted and
published exactly like executor-run jobs; on restart a running one is failed (its type is not
registered, so it is never re-queued).

*Internal* job types (a FluxScan scan batch) run on the executor like any job and show in the
queue, but only services submit them (:meth:`JobService.submit_internal`), with a *watcher*
that hears each progress report (with the job's structured ``detail``) and the end. They
belong to the process that submitted them: on restart, queued or running ones are failed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from quantdesk.core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from quantdesk.services.accounts import Principal
from quantdesk.services.job_ports import (
    ACTIVE,
    TERMINAL,
    EventBus,
    Executor,
    ExecutorEvent,
    Job,
    JobRun,
    JobStatus,
    JobStore,
    JobType,
    JobUpdate,
    JobWatcher,
    MachineResources,
    ResourceProbe,
    resolve_target,
)
from quantdesk.services.jobtypes import BUILTIN_TYPES

log = logging.getLogger(__name__)

TOPIC = "jobs"
MAX_PRIORITY = 100
RESTART_REASON = "server restarted while the job was running"
STOP_REASON = "server stopped while the job was running"


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as a caller sees it: ``position`` is its 1-based place in the queue while queued."""

    job: Job
    position: int | None = None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Running jobs and queued jobs (with their global queue positions), as one viewer may see them."""

    running: list[Job]
    queued: list[JobView]


@dataclass(frozen=True, slots=True)
class ResourceReport:
    """Machine figures for admins: cores (and those reserved by running jobs) and RAM in GB."""

    cpu_cores: float
    in_use_cores: float
    total_ram_gb: float
    available_ram_gb: float

    @property
    def in_use_ram_gb(self) -> float:
        return max(0.0, self.total_ram_gb - self.available_ram_gb)


def can_see(viewer: Principal | None, owner_id: int | None) -> bool:
    """Admins (and the CLI, ``viewer=None``) see every job; users see their own."""
    return viewer is None or viewer.is_admin or owner_id == viewer.user_id


def shortfall(cpu_need: float, ram_need: float, cpu_free: float, ram_free: float) -> str | None:
    """Say what the machine lacks for a job, in the ML backend's wording, or None when it fits."""
    reasons = []
    if ram_need > ram_free + 1e-9:
        reasons.append(f"Insufficient RAM: {max(ram_free, 0.0):.1f} GB available, {ram_need:.1f} GB required")
    if cpu_need > cpu_free + 1e-9:
        reasons.append(f"Insufficient CPU: {max(cpu_free, 0.0):.1f} cores available, {cpu_need:.1f} cores required")
    return "; ".join(reasons) or None


class JobService:
    """Submit, cancel, inspect and run jobs. ``start()`` launches the dispatcher; reads work without it.

    Ports arrive injected: ``store`` persists jobs, ``executor`` runs them, ``resources`` reports
    the machine, ``bus`` carries events. ``resources`` is a public attribute so an operator (or a
    test) can swap the probe.
    """

    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        resources: ResourceProbe,
        bus: EventBus,
        *,
        types: Iterable[JobType] = BUILTIN_TYPES,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        tick_s: float = 1.0,
    ):
        self._store = store
        self._executor = executor
        self.resources = resources
        self._bus = bus
        self._now = now
        self._tick_s = tick_s
        self._types: dict[str, JobType] = {}
        for job_type in types:
            self.register(job_type)
        self._running: dict[str, Job] = {}  # jobs this process's executor runs, with their reservations
        self._external: dict[str, tuple[Job, Callable[[], None] | None]] = {}  # external jobs, cancel hooks
        self._watchers: dict[str, JobWatcher] = {}  # internal jobs' submitters, until the job ends
        self._index: dict[str, Job] | None = None  # the active queue while started (None: read the store)
        self._synced_seq = 0  # the highest seq the index has seen
        self._reloaded_at = 0.0  # event-loop time of the last full re-read
        self._runner = uuid.uuid4().hex  # marks the rows this dispatcher runs (compare-and-set on updates)
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[ExecutorEvent] | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    # -- registry -----------------------------------------------------------------------------

    def register(self, job_type: JobType) -> None:
        """Add (or replace) a job type; its target must import and be callable."""
        if job_type.cpu_cores <= 0 or job_type.ram_gb < 0:
            raise InvalidInputError(f"job type {job_type.name!r}: cpu_cores must be > 0 and ram_gb >= 0")
        resolve_target(job_type.target)
        self._types[job_type.name] = job_type

    def job_types(self, viewer: Principal | None = None) -> list[JobType]:
        """The job types this viewer may submit, by name."""
        return sorted((t for t in self._types.values()
                       if not t.internal and (not t.admin_only or viewer is None or viewer.is_admin)),
                      key=lambda t: t.name)

    @property
    def executor_name(self) -> str:
        return self._executor.name

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from a previous run, start the executor and the dispatcher."""
        if self._task is not None:
            return
        await self._recover()
        await self._reload()
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[ExecutorEvent] = asyncio.Queue()
        self._inbox = inbox
        await asyncio.to_thread(self._executor.start, lambda ev: loop.call_soon_threadsafe(inbox.put_nowait, ev))
        self._stopping = False
        self._task = asyncio.create_task(self._dispatch(), name="job-dispatcher")
        async with self._lock:
            await self._admit()

    async def stop(self) -> None:
        """Stop the dispatcher and the executor; jobs it was running are re-queued or failed."""
        if self._task is None:
            return
        self._stopping = True
        self._task.cancel()
        # asyncio.wait (unlike awaiting the task) cannot hang if a cancellation is ever lost
        await asyncio.wait([self._task], timeout=5)
        self._task = None
        async with self._lock:
            await asyncio.to_thread(self._executor.close)
            abandoned, self._running = self._running, {}
            for job in abandoned.values():
                await self._abandon(job, STOP_REASON, runner=self._runner)
            external, self._external = self._external, {}
            for job, _hook in external.values():
                await self._abandon(job, STOP_REASON)
            for job_id in list(self._watchers):  # internal jobs still queued: nobody will collect them
                await asyncio.to_thread(self._store.update, job_id, expect=ACTIVE, status=JobStatus.FAILED,
                                        error=STOP_REASON, completed_at=self._now(), description="Failed")
                self._notify(JobUpdate(job_id, JobStatus.FAILED, error=STOP_REASON))
            self._index = None

    async def _recover(self) -> None:
        running = await asyncio.to_thread(self._store.list, statuses=frozenset({JobStatus.RUNNING}), limit=1_000_000)
        for job in running:
            await self._abandon(job, RESTART_REASON)
        queued = await asyncio.to_thread(self._store.list, statuses=frozenset({JobStatus.QUEUED}), limit=1_000_000)
        for job in queued:  # an internal job's submitter died with the previous process
            job_type = self._types.get(job.type)
            if job_type is not None and job_type.internal:
                await asyncio.to_thread(self._store.update, job.id, expect=frozenset({JobStatus.QUEUED}),
                                        status=JobStatus.FAILED, error=RESTART_REASON, completed_at=self._now(),
                                        description="Failed")

    async def _abandon(self, job: Job, reason: str, runner: str | None = None) -> None:
        job_type = self._types.get(job.type)
        running = frozenset({JobStatus.RUNNING})
        if job_type is not None and job_type.idempotent:
            await asyncio.to_thread(
                self._store.update, job.id, expect=running, expect_runner=runner, status=JobStatus.QUEUED,
                started_at=None, progress=0.0, description=f"Re-queued: {reason}", reason=None, runner=None,
            )
            log.info("job %s (%s) re-queued: %s", job.id, job.type, reason)
        else:
            await asyncio.to_thread(
                self._store.update, job.id, expect=running, expect_runner=runner, status=JobStatus.FAILED,
                error=reason, completed_at=self._now(), description="Failed",
            )
            log.warning("job %s (%s) failed: %s", job.id, job.type, reason)

    # -- commands -----------------------------------------------------------------------------

    async def submit(self, viewer: Principal | None, type_name: str, params: dict[str, Any] | None = None,
                     priority: int = 0) -> JobView:
        """Queue a job of ``type_name`` for ``viewer`` and start it at once if resources allow.

        Raises InvalidInputError (unknown type, bad params or priority), ForbiddenError (an
        admin-only type submitted by a user).
        """
        job_type = self._types.get(type_name)
        if job_type is None or job_type.internal:
            names = ", ".join(t.name for t in self.job_types(viewer))
            raise InvalidInputError(f"unknown task type {type_name!r}; choose one of: {names}", field="type")
        if job_type.admin_only and viewer is not None and not viewer.is_admin:
            raise ForbiddenError(f"task type {type_name!r} can be submitted by admins only")
        return await self._enqueue(viewer, job_type, viewer.user_id if viewer else None, params, priority)

    async def submit_internal(self, owner_id: int | None, type_name: str, params: dict[str, Any], *,
                              watcher: JobWatcher, description: str = "Queued", priority: int = 0) -> Job:
        """Queue a job of an internal type for ``owner_id`` on a service's behalf.

        ``watcher`` is called on the event loop (it must not block) with every progress report
        and, last, the end (completed, failed or cancelled, whoever ended it). Raises
        InvalidInputError for an unknown type or bad params.
        """
        job_type = self._types.get(type_name)
        if job_type is None or not job_type.internal:
            raise InvalidInputError(f"{type_name!r} is not an internal task type", field="type")
        view = await self._enqueue(None, job_type, owner_id, params, priority, watcher=watcher,
                                   description=description)
        return view.job

    async def _enqueue(self, viewer: Principal | None, job_type: JobType, owner_id: int | None,
                       params: dict[str, Any] | None, priority: int, *, watcher: JobWatcher | None = None,
                       description: str = "Queued") -> JobView:
        params = self._check_params(job_type, params)
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidInputError(f"priority {priority} is outside -{MAX_PRIORITY}..{MAX_PRIORITY}", field="priority")
        job = Job(
            id=str(uuid.uuid4()), type=job_type.name, owner_id=owner_id,
            status=JobStatus.QUEUED, priority=priority, cpu_cores=job_type.cpu_cores, ram_gb=job_type.ram_gb,
            params=params, created_at=self._now(), description=description,
        )
        job = await asyncio.to_thread(self._store.add, job)
        async with self._lock:
            if watcher is not None:
                self._watchers[job.id] = watcher
            if self._index is not None:
                await self._sync()
                if self._index is not None:
                    job = self._index.setdefault(job.id, job)  # the sync may hold it already
            position = _position(await self._active(), job.id)
            await self._publish("task_queued", job, {"task_id": job.id, "task_type": job.type,
                                                      "queue_position": position or 1})
            await self._admit()
            view = self._view(job.id)
        return view or await self.get(viewer, job.id)

    @staticmethod
    def _check_params(job_type: JobType, params: dict[str, Any] | None) -> dict[str, Any]:
        params = dict(params or {})
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"params must be plain JSON: {exc}", field="params") from None
        try:
            inspect.signature(resolve_target(job_type.target)).bind(None, **params)
        except TypeError as exc:
            raise InvalidInputError(f"params for task type {job_type.name!r}: {exc}", field="params") from None
        return params

    async def cancel(self, viewer: Principal | None, job_id: str) -> JobView:
        """Cancel a queued or running job (a running one stops within about a second).

        Raises NotFoundError when the viewer cannot see the job, ConflictError when it has finished.
        """
        async with self._lock:
            job = await self._visible(viewer, job_id)
            if job.is_terminal:
                raise ConflictError(f"task {job_id} is already {job.status.value}; only queued or running tasks "
                                    "can be cancelled", code="TASK_FINISHED")
            if job.id in self._running:
                self._running.pop(job.id)
                await asyncio.to_thread(self._executor.cancel, job.id)
            external = self._external.pop(job.id, None)
            if external is not None and external[1] is not None:
                try:
                    external[1]()
                except Exception:  # the job is cancelled regardless; the service finishes it as it can
                    log.exception("cancel hook of external job %s failed", job.id)
            changed = await asyncio.to_thread(
                self._store.update, job.id, expect=ACTIVE, status=JobStatus.CANCELLED, completed_at=self._now(),
                description="Cancelled", reason=None,
            )
            self._drop(job.id)
            self._notify(JobUpdate(job.id, JobStatus.CANCELLED, job.progress))
            if changed:
                await self._publish("task_cancelled", job, {"task_id": job.id})
            await self._admit()
        return await self.get(viewer, job_id)

    # -- external jobs ----------------------------------------------------------------------

    async def start_external(self, owner_id: int | None, type_name: str, *, description: str = "",
                             params: dict[str, Any] | None = None,
                             on_cancel: Callable[[], None] | None = None) -> Job:
        """Record work a service runs itself as a running job of ``owner_id`` (ownership checked by the caller).

        It skips admission and reserves nothing (it runs on the service's own workers). ``on_cancel``
        is called (on the event loop, so it must not block) when the job is cancelled through
        :meth:`cancel`; the service should then stop and call :meth:`finish_external`, which is
        a no-op by then. Raises InvalidInputError when ``params`` is not plain JSON.
        """
        params = dict(params or {})
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"params must be plain JSON: {exc}", field="params") from None
        now = self._now()
        job = Job(
            id=str(uuid.uuid4()), type=type_name, owner_id=owner_id, status=JobStatus.RUNNING, priority=0,
            cpu_cores=0.0, ram_gb=0.0, params=params, created_at=now, started_at=now,
            description=description or f"Running {type_name}...",
        )
        job = await asyncio.to_thread(self._store.add, job)
        async with self._lock:
            self._external[job.id] = (job, on_cancel)
            if self._index is not None:
                await self._sync()
                self._put(job)
            # the same announcements as a submitted job that starts at once
            await self._publish("task_queued", job, {"task_id": job.id, "task_type": job.type, "queue_position": 1})
            await self._publish("task_running", job, {"task_id": job.id, "task_type": job.type,
                                                       "description": job.description})
        return job

    async def progress_external(self, job_id: str, pct: float, description: str | None = None) -> bool:
        """Record an external job's progress (0–100) and description; False once it is no longer running
        (cancelled here or by another process: the service should stop)."""
        pct = min(100.0, max(0.0, float(pct)))
        values: dict[str, Any] = {"progress": pct}
        if description is not None:
            values["description"] = description
        async with self._lock:
            held = self._external.get(job_id)
            changed = await asyncio.to_thread(self._store.update, job_id, expect=frozenset({JobStatus.RUNNING}),
                                              **values)
            if not changed:
                self._external.pop(job_id, None)
                self._drop(job_id)
                return False
            if held is None:  # another process's service: stored, nothing of ours to announce
                return True
            job = replace(held[0], progress=pct, description=values.get("description", held[0].description))
            self._external[job_id] = (job, held[1])
            self._put(job)
            await self._publish("task_description_update", job,
                                {"task_id": job.id, "description": job.description, "progress": pct})
            return True

    async def finish_external(self, job_id: str, status: JobStatus, *, result: dict[str, Any] | None = None,
                              error: str | None = None) -> bool:
        """End an external job as completed, failed or cancelled; False when it had ended already."""
        if status not in TERMINAL:
            raise InvalidInputError(f"an external job ends completed, failed or cancelled, not {status.value}",
                                    field="status")
        values: dict[str, Any] = {"status": status, "completed_at": self._now(), "reason": None}
        data: dict[str, Any] = {"task_id": job_id}
        if status is JobStatus.COMPLETED:
            values.update(result=result or {}, progress=100.0, description="Completed")
        elif status is JobStatus.FAILED:
            values.update(result=result, error=error or "failed", description="Failed")
            data["error"] = error or "failed"
        else:
            values.update(result=result, description="Cancelled")
        async with self._lock:
            held = self._external.pop(job_id, None)
            self._drop(job_id)
            changed = await asyncio.to_thread(self._store.update, job_id, expect=frozenset({JobStatus.RUNNING}),
                                              **values)
            if changed:
                job = held[0] if held is not None else await asyncio.to_thread(self._store.get, job_id)
                if job is not None:
                    await self._publish(f"task_{status.value}", job, data)
            return changed

    # -- queries ------------------------------------------------------------------------------

    async def get(self, viewer: Principal | None, job_id: str) -> JobView:
        """One job with its queue position; NotFoundError when missing or not the viewer's."""
        job = await self._visible(viewer, job_id)
        position = None
        if job.status is JobStatus.QUEUED:
            position = _position(await self._active(sync=True), job.id)
        return JobView(job, position)

    async def list_jobs(self, viewer: Principal | None, *, statuses: frozenset[JobStatus] | None = None,
                        limit: int = 100) -> list[Job]:
        """Jobs newest first: all of them for admins and the CLI, a user's own otherwise."""
        owner = None if viewer is None or viewer.is_admin else viewer.user_id
        return await asyncio.to_thread(self._store.list, owner_id=owner, statuses=statuses, limit=limit)

    async def queue(self, viewer: Principal | None) -> QueueSnapshot:
        """Running and queued jobs the viewer may see; positions count every queued job."""
        active = await self._active(sync=True)
        running = [j for j in active if j.status is JobStatus.RUNNING and can_see(viewer, j.owner_id)]
        queued, position = [], 0
        for job in active:
            if job.status is JobStatus.QUEUED:
                position += 1
                if can_see(viewer, job.owner_id):
                    queued.append(JobView(job, position))
        return QueueSnapshot(running, queued)

    async def resources_report(self) -> ResourceReport:
        """CPU and RAM figures: cores reserved by running jobs, RAM as the machine reports it."""
        res = self.resources()
        active = await self._active()
        in_use = sum(_cpu_need(j, res) for j in active if j.status is JobStatus.RUNNING)
        return ResourceReport(res.cpu_cores, in_use, res.total_ram_gb, res.available_ram_gb)

    def subscribe(self, maxsize: int = 1000) -> Any:
        """A bus subscription to job events (messages ``{"type", "owner_id", "data"}``)."""
        return self._bus.subscribe(TOPIC, maxsize=maxsize)

    async def wait(self, job_id: str, timeout_s: float = 60.0, poll_s: float = 0.05) -> Job:
        """Poll until the job has finished and return it; raise TimeoutError after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            job = await asyncio.to_thread(self._store.get, job_id)
            if job is None:
                raise NotFoundError("task", job_id)
            if job.is_terminal:
                return job
            if loop.time() > deadline:
                raise TimeoutError(f"task {job_id} still {job.status.value} after {timeout_s} s")
            await asyncio.sleep(poll_s)

    # -- the in-memory active queue ---------------------------------------------------------

    async def _active(self, *, sync: bool = False) -> list[Job]:
        """Queued and running jobs, priority first then FIFO: from the index while started, else the store."""
        if self._index is not None and sync:
            await self._sync()
        if self._index is None:
            return await asyncio.to_thread(self._store.active)
        return _ordered(self._index)

    async def _reload(self) -> None:
        """Re-read the whole active queue (at start, then once per dispatcher tick)."""
        jobs, latest = await asyncio.to_thread(self._store.active_after, 0)
        self._index = {j.id: j for j in jobs}
        self._synced_seq = latest
        self._reloaded_at = asyncio.get_running_loop().time()

    async def _sync(self) -> None:
        """Add the active jobs stored after the newest seq the index has seen (other processes' submits)."""
        jobs, latest = await asyncio.to_thread(self._store.active_after, self._synced_seq)
        if self._index is None:  # stopped meanwhile
            return
        for job in jobs:
            self._index.setdefault(job.id, job)  # an entry held already is as new or newer
        self._synced_seq = max(self._synced_seq, latest)

    def _put(self, job: Job) -> None:
        if self._index is not None:
            self._index[job.id] = job

    def _drop(self, job_id: str) -> None:
        if self._index is not None:
            self._index.pop(job_id, None)

    def _view(self, job_id: str) -> JobView | None:
        """The job as the index holds it, with its position (None when not held: finished, or not started)."""
        job = self._index.get(job_id) if self._index is not None else None
        if job is None or self._index is None:
            return None
        queued = job.status is JobStatus.QUEUED
        return JobView(job, _position(_ordered(self._index), job_id) if queued else None)

    async def _visible(self, viewer: Principal | None, job_id: str) -> Job:
        job = await asyncio.to_thread(self._store.get, job_id)
        if job is None or not can_see(viewer, job.owner_id):
            raise NotFoundError("task", job_id)
        return job

    # -- dispatcher ---------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        inbox = self._inbox
        if inbox is None:
            raise RuntimeError("JobService.start() was not awaited")
        while not self._stopping:
            events: list[ExecutorEvent] = []
            try:
                async with asyncio.timeout(self._tick_s):
                    events.append(await inbox.get())
            except TimeoutError:
                pass
            while not inbox.empty():
                events.append(inbox.get_nowait())
            try:
                async with self._lock:
                    await self._handle(events)
                    if asyncio.get_running_loop().time() - self._reloaded_at >= self._tick_s:
                        await self._reload()  # notices what other processes cancelled or started
                        await self._notify_ended_elsewhere()
                    if not events or any(ev.kind != "progress" for ev in events):
                        await self._admit()
            except asyncio.CancelledError:
                raise
            except Exception:  # the job runner must survive anything one event does
                log.exception("job dispatcher failed on %d event(s); continuing", len(events))

    async def _handle(self, events: list[ExecutorEvent]) -> None:
        last_progress = {ev.job_id: i for i, ev in enumerate(events) if ev.kind == "progress"}
        for i, ev in enumerate(events):
            if ev.kind == "progress":
                if last_progress[ev.job_id] == i:  # coalesce a burst of progress reports
                    await self._progress(ev)
            elif ev.kind == "completed":
                await self._finish(ev.job_id, JobStatus.COMPLETED, result=ev.result)
            elif ev.kind == "failed":
                await self._finish(ev.job_id, JobStatus.FAILED, error=ev.error or "failed")
            elif ev.kind == "cancelled":
                await self._finish(ev.job_id, JobStatus.CANCELLED)

    async def _progress(self, ev: ExecutorEvent) -> None:
        job = self._running.get(ev.job_id)
        if job is None:
            return
        pct = min(100.0, max(0.0, float(ev.progress if ev.progress is not None else job.progress)))
        description = ev.description if ev.description is not None else job.description
        job = replace(job, progress=pct, description=description)
        self._running[job.id] = job
        self._put(job)
        await asyncio.to_thread(self._store.update, job.id, expect=frozenset({JobStatus.RUNNING}),
                                expect_runner=self._runner, progress=pct, description=description)
        await self._publish("task_description_update", job,
                            {"task_id": job.id, "description": description, "progress": pct})
        self._notify(JobUpdate(job.id, JobStatus.RUNNING, pct, ev.detail))

    async def _finish(self, job_id: str, status: JobStatus, *, result: dict | None = None,
                      error: str | None = None) -> None:
        job = self._running.pop(job_id, None)
        if job is None:  # cancelled meanwhile, or not ours
            return
        self._drop(job_id)
        values: dict[str, Any] = {"status": status, "completed_at": self._now(), "reason": None}
        data: dict[str, Any] = {"task_id": job_id}
        if status is JobStatus.COMPLETED:
            values.update(result=result or {}, progress=100.0, description="Completed")
        elif status is JobStatus.FAILED:
            values.update(error=error, description="Failed")
            data["error"] = error
        else:
            values["description"] = "Cancelled"
        changed = await asyncio.to_thread(self._store.update, job_id, expect=frozenset({JobStatus.RUNNING}),
                                          expect_runner=self._runner, **values)
        if changed:
            await self._publish(f"task_{status.value}", job, data)
            self._notify(JobUpdate(job_id, status, 100.0 if status is JobStatus.COMPLETED else job.progress,
                                   result=result, error=error))
        else:  # ended by another process meanwhile (a cancel there)
            self._notify(JobUpdate(job_id, JobStatus.CANCELLED, job.progress))

    async def _admit(self) -> None:
        """Start queued jobs in order while the machine has room; record why the others wait."""
        if self._task is None or self._stopping:
            return
        active = await self._active()
        res = self.resources()
        running = [j for j in active if j.status is JobStatus.RUNNING]
        reserved_cpu = sum(_cpu_need(j, res) for j in running)
        reserved_ram = sum(j.ram_gb for j in running)
        waiting = 0
        for job in active:
            if job.status is not JobStatus.QUEUED:
                continue
            job_type = self._types.get(job.type)
            if job_type is None:
                await self._fail_queued(job, f"task type {job.type!r} is not registered on this server")
                continue
            cpu_need = _cpu_need(job, res)
            # RAM a running job has not allocated yet still counts as taken
            ram_free = min(res.available_ram_gb, res.total_ram_gb - reserved_ram)
            reason = shortfall(cpu_need, job.ram_gb, res.cpu_cores - reserved_cpu, ram_free)
            if reason is None and waiting:
                reason = f"Waiting for {waiting} earlier task(s) in the queue"
            if reason is not None:
                waiting += 1
                if reason != job.reason:
                    if await asyncio.to_thread(self._store.update, job.id, expect=frozenset({JobStatus.QUEUED}),
                                               reason=reason):
                        self._put(replace(job, reason=reason))
                    else:  # cancelled or started by another process meanwhile
                        self._drop(job.id)
                continue
            if await self._start_job(job, job_type):
                reserved_cpu += cpu_need
                reserved_ram += job.ram_gb

    async def _start_job(self, job: Job, job_type: JobType) -> bool:
        description = f"Starting {job.type}..."
        started_at = self._now()
        started = await asyncio.to_thread(
            self._store.update, job.id, expect=frozenset({JobStatus.QUEUED}), status=JobStatus.RUNNING,
            started_at=started_at, reason=None, description=description, progress=0.0, runner=self._runner,
        )
        if not started:  # cancelled, or taken by another dispatcher (the next re-read shows which)
            self._drop(job.id)
            return False
        job = replace(job, status=JobStatus.RUNNING, description=description, reason=None, progress=0.0,
                      started_at=started_at)
        self._running[job.id] = job
        self._put(job)
        await self._publish("task_running", job, {"task_id": job.id, "task_type": job.type,
                                                   "description": description})
        run = JobRun(job.id, job_type.target, job.params, job.cpu_cores, job.ram_gb)
        try:
            await asyncio.to_thread(self._executor.submit, run)
        except Exception as exc:  # an executor that cannot take the job fails it, not the dispatcher
            log.exception("executor %s refused job %s", self._executor.name, job.id)
            await self._finish(job.id, JobStatus.FAILED, error=f"could not start: {exc}")
            return False
        return True

    async def _fail_queued(self, job: Job, error: str) -> None:
        self._drop(job.id)
        if await asyncio.to_thread(self._store.update, job.id, expect=frozenset({JobStatus.QUEUED}),
                                   status=JobStatus.FAILED, error=error, completed_at=self._now(), reason=None):
            await self._publish("task_failed", job, {"task_id": job.id, "error": error})
        self._notify(JobUpdate(job.id, JobStatus.FAILED, error=error))

    async def _notify_ended_elsewhere(self) -> None:
        """Tell watchers of internal jobs another process ended (cancelled) while they were queued."""
        if self._index is None:
            return
        for job_id in [j for j in self._watchers if j not in self._index and j not in self._running]:
            job = await asyncio.to_thread(self._store.get, job_id)
            if job is not None and job.is_terminal:
                self._notify(JobUpdate(job_id, job.status, job.progress, result=job.result, error=job.error))

    def _notify(self, update: JobUpdate) -> None:
        """Tell an internal job's submitter; the end is the last thing it hears."""
        watcher = (self._watchers.pop(update.job_id, None) if update.status in TERMINAL
                   else self._watchers.get(update.job_id))
        if watcher is None:
            return
        try:
            watcher(update)
        except Exception:  # a submitter's bug must not stop the dispatcher
            log.exception("watcher of job %s failed", update.job_id)

    async def _publish(self, event_type: str, job: Job, data: dict[str, Any]) -> None:
        try:
            await self._bus.publish(TOPIC, {"type": event_type, "owner_id": job.owner_id, "data": data})
        except Exception:  # a bus outage must not stop jobs; state is in the database
            log.exception("could not publish %s for job %s", event_type, job.id)


def _cpu_need(job: Job, res: MachineResources) -> float:
    # a job asking for more cores than the machine has runs alone rather than never
    return min(job.cpu_cores, res.cpu_cores)


def _ordered(index: dict[str, Job]) -> list[Job]:
    return sorted(index.values(), key=lambda j: (-j.priority, j.seq or 0))


def _position(active: list[Job], job_id: str) -> int | None:
    position = 0
    for job in active:
        if job.status is JobStatus.QUEUED:
            position += 1
            if job.id == job_id:
                return position
    return None
