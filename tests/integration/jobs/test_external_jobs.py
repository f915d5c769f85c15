"""External jobs: work a service runs itself, tracked in the one task queue (persisted, published, cancellable)."""

from __future__ import annotations

import pytest
from jobs_kit import migrated_sqlite, started_service

from quantdesk.core.errors import ConflictError, InvalidInputError, NotFoundError
from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.jobs import RESTART_REASON, STOP_REASON

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")
ALICE = Principal(2, "alice", Role.USER, "bearer", "t2")
BOB = Principal(3, "bob", Role.USER, "bearer", "t3")


async def test_external_job_runs_reports_and_completes_like_an_executor_job(tmp_path):
    url = migrated_sqlite(tmp_path)
    async with started_service(url) as (h, sub):
        job = await h.service.start_external(ALICE.user_id, "scan", description="Scanning", params={"scan_id": 7})
        queue = await h.service.queue(ALICE)
        assert [j.id for j in queue.running] == [job.id] and queue.running[0].type == "scan"
        assert (await h.service.queue(BOB)).running == []
        with pytest.raises(NotFoundError):
            await h.service.get(BOB, job.id)
        assert (await h.service.resources_report()).in_use_cores == 0  # reserves nothing
        assert await h.service.progress_external(job.id, 40, "Scanning TCS (20/50)")
        assert (await h.service.get(ALICE, job.id)).job.progress == 40
        assert await h.service.finish_external(job.id, JobStatus.COMPLETED, result={"signals": 3})
        assert not await h.service.finish_external(job.id, JobStatus.FAILED, error="late")
        done = (await h.service.get(ALICE, job.id)).job
        assert done.status is JobStatus.COMPLETED and done.result == {"signals": 3} and done.progress == 100
        events = [e for e in h.drain(sub) if e["data"]["task_id"] == job.id]
        assert [e["type"] for e in events] == ["task_queued", "task_running", "task_description_update",
                                                "task_completed"]
        assert all(e["owner_id"] == ALICE.user_id for e in events)
        assert events[2]["data"] == {"task_id": job.id, "description": "Scanning TCS (20/50)", "progress": 40.0}
        with pytest.raises(InvalidInputError):
            await h.service.start_external(ALICE.user_id, "scan", params={"x": float("nan")})


async def test_cancel_calls_the_hook_and_progress_then_says_stop(tmp_path):
    url = migrated_sqlite(tmp_path)
    cancelled: list[str] = []
    async with started_service(url) as (h, sub):
        job = await h.service.start_external(ALICE.user_id, "scan", on_cancel=lambda: cancelled.append("yes"))
        with pytest.raises(NotFoundError):
            await h.service.cancel(BOB, job.id)
        view = await h.service.cancel(ALICE, job.id)
        assert view.job.status is JobStatus.CANCELLED and cancelled == ["yes"]
        assert not await h.service.progress_external(job.id, 50)
        assert not await h.service.finish_external(job.id, JobStatus.CANCELLED)
        with pytest.raises(ConflictError):
            await h.service.cancel(ALICE, job.id)
        assert h.types_for(job.id, sub)[-1] == "task_cancelled"
        assert (await h.service.queue(ADMIN)).running == []


async def test_running_external_jobs_fail_on_stop_and_on_restart(tmp_path):
    url = migrated_sqlite(tmp_path)
    async with started_service(url) as (old, _):
        stopped = await old.service.start_external(ALICE.user_id, "scan")
    async with started_service(url) as (mid, _):
        assert (await mid.service.get(None, stopped.id)).job.error == STOP_REASON
        crashed = await mid.service.start_external(ALICE.user_id, "scan")
        mid.service._external.clear()  # as if the process died: nothing left to abandon on stop
    async with started_service(url) as (new, _):
        job = (await new.service.get(None, crashed.id)).job
        assert job.status is JobStatus.FAILED and job.error == RESTART_REASON
