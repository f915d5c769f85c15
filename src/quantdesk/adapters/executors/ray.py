"""Ray executor: each job becomes a Ray task sized by its type's estimates (``num_cpus``, ``memory``).

Progress travels through one small actor (a mailbox the driver drains); completion is
watched with ``ray.wait`` on a poller thread. Cancelling force-cancels the task, which kills
its worker process. Used when ``QD_RAY_ADDRESS`` is set (``local`` starts a private instance).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray

from quantdesk.adapters.executors.runner import WorkerContext, run_job
from quantdesk.services.job_ports import EventSink, ExecutorEvent, JobRun, MachineResources

log = logging.getLogger(__name__)

POLL_S = 0.05


class _Mailbox:
    """Actor collecting progress messages from tasks until the driver drains them."""

    def __init__(self) -> None:
        self._messages: list[tuple] = []

    def put(self, message: tuple) -> None:
        self._messages.append(message)

    def flushed(self) -> None:
        """Answer once every message sent to this mailbox before the call has been put (actor calls run in order)."""

    def drain(self) -> list[tuple]:
        messages, self._messages = self._messages, []
        return messages


def _ray_entry(job_id: str, target: str, params: dict[str, Any], mailbox: Any) -> tuple[str, dict | None, str | None]:
    # runs inside a Ray worker; progress is fire-and-forget to the mailbox actor
    def emit(pct: float, description: str | None, detail: dict | None) -> None:
        mailbox.put.remote(("progress", job_id, pct, description, detail))

    outcome = run_job(WorkerContext(job_id, emit), target, params)
    # the puts are fire-and-forget: wait until the mailbox holds them all, so the driver (which
    # drains the mailbox before it collects finished tasks) reports progress before the end
    ray.get(mailbox.flushed.remote())
    return outcome


class RayExecutor:
    """Run jobs as Ray tasks on the cluster at ``address`` (``"local"``: a new local instance).

    ``init_kwargs`` go to ``ray.init`` (e.g. ``num_cpus=2`` for a test instance). The executor
    shuts Ray down on close only when it started it.
    """

    name = "ray"

    def __init__(self, address: str | None = "auto", **init_kwargs: Any):
        self._address = None if address in (None, "", "local") else address
        self._init_kwargs = {"include_dashboard": False, "log_to_driver": False, **init_kwargs}
        self._lock = threading.Lock()
        self._refs: dict[Any, str] = {}
        self._by_job: dict[str, Any] = {}
        self._sink: EventSink | None = None
        self._mailbox: Any = None
        self._remote: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._owns_ray = False

    def start(self, sink: EventSink) -> None:
        self._sink = sink
        if not ray.is_initialized():
            ray.init(address=self._address, ignore_reinit_error=True, **self._init_kwargs)
            self._owns_ray = True
        self._mailbox = ray.remote(num_cpus=0)(_Mailbox).remote()
        self._remote = ray.remote(_ray_entry)
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="ray-executor-poller", daemon=True)
        self._thread.start()

    def submit(self, run: JobRun) -> None:
        if self._remote is None:
            raise RuntimeError("the Ray executor is not running")
        options: dict[str, Any] = {"num_cpus": run.cpu_cores, "max_retries": 0, "name": f"job-{run.job_id}"}
        if run.ram_gb > 0:
            options["memory"] = int(run.ram_gb * 1024**3)
        ref = self._remote.options(**options).remote(run.job_id, run.target, run.params, self._mailbox)
        with self._lock:
            self._refs[ref] = run.job_id
            self._by_job[run.job_id] = ref

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            ref = self._by_job.pop(job_id, None)
            if ref is None:
                return False
            self._refs.pop(ref, None)
        try:
            ray.cancel(ref, force=True)
        except Exception as exc:  # already finished, or the worker is gone: either way it has stopped
            log.debug("ray.cancel(%s): %s", job_id, exc)
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._lock:
            refs = list(self._refs)
            self._refs.clear()
            self._by_job.clear()
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # best effort at shutdown
                log.debug("ray.cancel at close: %s", exc)
        self._remote = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def resources(self) -> MachineResources:
        """The cluster's CPUs and Ray-schedulable memory (what Ray will admit tasks against)."""
        total = ray.cluster_resources()
        memory_gb = float(total.get("memory", 0.0)) / 1024**3
        return MachineResources(float(total.get("CPU", 1.0)), memory_gb, memory_gb)

    # -- internals ----------------------------------------------------------------------------

    def _emit(self, event: ExecutorEvent) -> None:
        if self._sink is not None:
            self._sink(event)

    def _drain_mailbox(self) -> None:
        for _, job_id, pct, description, detail in ray.get(self._mailbox.drain.remote()):
            with self._lock:
                live = job_id in self._by_job
            if live:
                self._emit(ExecutorEvent(job_id, "progress", progress=pct, description=description, detail=detail))

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    refs = list(self._refs)
                if refs:
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=POLL_S)
                else:
                    ready = []
                    self._stop.wait(POLL_S)
                self._drain_mailbox()
                for ref in ready:
                    self._collect(ref)
            except Exception:  # the poller must survive a flaky cluster
                log.exception("ray executor poll failed")
                self._stop.wait(1.0)

    def _collect(self, ref: Any) -> None:
        with self._lock:
            job_id = self._refs.pop(ref, None)
            if job_id is None:
                return
            self._by_job.pop(job_id, None)
        try:
            kind, result, error = ray.get(ref)
        except Exception as exc:  # worker crash, node loss, OOM kill
            kind, result, error = "failed", None, f"Ray task failed: {type(exc).__name__}: {exc}"
        self._emit(ExecutorEvent(job_id, kind, result=result, error=error))
