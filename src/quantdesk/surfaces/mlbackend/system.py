"""ML backend "System Resources & Monitoring": task queue, resources, task events (SSE), task commands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from quantdesk.core.errors import AuthenticationError
from quantdesk.services.accounts import Principal
from quantdesk.services.job_ports import Job, JobStatus
from quantdesk.services.jobs import JobService, JobView, QueueSnapshot, ResourceReport, can_see
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse, dumps

router = APIRouter(tags=["mlbackend"])

HEARTBEAT_S = 5.0  # documented interval; app.state.sse_heartbeat_s overrides it (tests)


def jobs_of(request: Request) -> JobService:
    return request.app.state.jobs


Jobs = Annotated[JobService, Depends(jobs_of)]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="a registered task type, e.g. demo_backtest")
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-100, le=100, description="higher runs first; FIFO within a priority")


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 2)


def _running_item(job: Job, admin: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"task_id": job.id, "task_type": job.type}
    if admin:
        item.update(estimated_cpu_cores=job.cpu_cores, estimated_ram_gb=job.ram_gb)
    item.update(description=job.description, progress=job.progress)
    return item


def _queued_item(view: JobView, admin: bool) -> dict[str, Any]:
    job = view.job
    item: dict[str, Any] = {"task_id": job.id, "task_type": job.type, "queue_position": view.position}
    if admin:
        item.update(estimated_cpu_cores=job.cpu_cores, estimated_ram_gb=job.ram_gb)
    item.update(queued_at=job.created_at, reason=job.reason)
    return item


def queue_body(snapshot: QueueSnapshot, admin: bool) -> dict[str, Any]:
    return {
        "running_count": len(snapshot.running),
        "queued_count": len(snapshot.queued),
        "running_tasks": [_running_item(j, admin) for j in snapshot.running],
        "queued_tasks": [_queued_item(v, admin) for v in snapshot.queued],
    }


def resources_body(report: ResourceReport) -> dict[str, Any]:
    total_ram = report.total_ram_gb
    return {
        "cpu": {
            "available_cores": _number(report.cpu_cores),
            "in_use_cores": round(report.in_use_cores, 2),
            "usage_percent": round(100.0 * report.in_use_cores / report.cpu_cores, 2) if report.cpu_cores else 0.0,
        },
        "ram": {
            "total_gb": round(total_ram, 2),
            "available_gb": round(report.available_ram_gb, 2),
            "in_use_gb": round(report.in_use_ram_gb, 2),
            "usage_percent": round(100.0 * report.in_use_ram_gb / total_ram, 2) if total_ram else 0.0,
        },
    }


def task_body(view: JobView) -> dict[str, Any]:
    job = view.job
    return {
        "task_id": job.id,
        "task_type": job.type,
        "status": job.status.value,
        "owner_id": job.owner_id,
        "priority": job.priority,
        "progress": job.progress,
        "description": job.description,
        "queue_position": view.position,
        "reason": job.reason,
        "estimated_cpu_cores": job.cpu_cores,
        "estimated_ram_gb": job.ram_gb,
        "params": job.params,
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
    }


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        # the ML reference answers 401 (not 403) to non-admins here
        raise AuthenticationError("admin access required for system resources")


@router.get("/api/system/queue")
async def system_queue(principal: CurrentUser, jobs: Jobs) -> dict:
    """Task queue status (non-admins see only their own tasks)."""
    return queue_body(await jobs.queue(principal), principal.is_admin)


@router.get("/api/system/resources")
async def system_resources(principal: CurrentUser, jobs: Jobs) -> dict:
    """Resources (admins) and the task queue."""
    body: dict[str, Any] = {}
    if principal.is_admin:
        body["resources"] = resources_body(await jobs.resources_report())
    body["queue"] = queue_body(await jobs.queue(principal), principal.is_admin)
    body["is_admin"] = principal.is_admin
    return body


@router.get("/api/system/resources-only")
async def system_resources_only(principal: CurrentUser, jobs: Jobs) -> dict:
    """CPU and RAM figures only (admin)."""
    _require_admin(principal)
    return {"resources": resources_body(await jobs.resources_report())}


@router.get("/api/system/task-types")
def task_types(principal: CurrentUser, jobs: Jobs) -> dict:
    """Task types the caller may submit, with their resource estimates."""
    return {"task_types": [
        {"name": t.name, "summary": t.summary, "estimated_cpu_cores": t.cpu_cores, "estimated_ram_gb": t.ram_gb,
         "idempotent": t.idempotent, "admin_only": t.admin_only}
        for t in jobs.job_types(principal)
    ]}


@router.post("/api/system/tasks", status_code=202)
async def submit_task(body: TaskCreate, principal: CurrentUser, jobs: Jobs) -> JsonResponse:
    """Submit a task; it runs now or waits in the queue for resources."""
    view = await jobs.submit(principal, body.type, body.params, body.priority)
    out = task_body(view)
    if view.job.status is JobStatus.QUEUED:
        why = " due to insufficient resources" if view.job.reason and view.job.reason.startswith("Insufficient") else ""
        out["message"] = f"Task queued{why}. Position in queue: {view.position}"
    else:
        out["message"] = f"Task {view.job.status.value}. Check status at /api/system/tasks/{view.job.id}"
    return JsonResponse(out, status_code=202)


@router.get("/api/system/tasks")
async def list_tasks(principal: CurrentUser, jobs: Jobs, status: JobStatus | None = None,
                     limit: int = Query(100, ge=1, le=1000)) -> dict:
    """Tasks newest first (non-admins see only their own)."""
    found = await jobs.list_jobs(principal, statuses=frozenset({status}) if status else None, limit=limit)
    return {"tasks": [task_body(JobView(j)) for j in found]}


@router.get("/api/system/tasks/{task_id}")
async def get_task(task_id: str, principal: CurrentUser, jobs: Jobs) -> dict:
    """One task with its progress, result or error."""
    return task_body(await jobs.get(principal, task_id))


@router.delete("/api/system/tasks/{task_id}")
async def cancel_task(task_id: str, principal: CurrentUser, jobs: Jobs) -> dict:
    """Cancel a queued or running task (owner or admin)."""
    return task_body(await jobs.cancel(principal, task_id))


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


@router.get("/api/system/task-events")
async def task_events(request: Request, principal: CurrentUser, jobs: Jobs) -> StreamingResponse:
    """Server-Sent Events: initial_state, task_* events and a heartbeat every 5 s."""
    heartbeat_s = float(getattr(request.app.state, "sse_heartbeat_s", HEARTBEAT_S))
    admin = principal.is_admin

    async def stream():
        subscription = jobs.subscribe()
        try:
            snapshot = await jobs.queue(principal)
            yield _sse({"type": "initial_state", "data": queue_body(snapshot, admin), "is_admin": admin})
            loop = asyncio.get_running_loop()
            next_beat = loop.time() + heartbeat_s
            while True:
                wait = next_beat - loop.time()
                if wait <= 0:
                    beat: dict[str, Any] = {"type": "heartbeat", "timestamp": datetime.now(UTC)}
                    if admin:
                        beat["resources"] = resources_body(await jobs.resources_report())
                    beat["is_admin"] = admin
                    yield _sse(beat)
                    next_beat = loop.time() + heartbeat_s
                    continue
                try:
                    async with asyncio.timeout(wait):
                        _topic, message = await subscription.get()
                except TimeoutError:
                    continue
                if can_see(principal, message.get("owner_id")):
                    yield _sse({"type": message["type"], "data": message["data"]})
        finally:
            subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
