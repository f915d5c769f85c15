"""Internal job types: submitted by services with a watcher, hidden from the API, never left behind."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from jobs_kit import BIG, TEST_TYPES, WAIT, FakeMachine, migrated_sqlite, started_service, until

from quantdesk.core.errors import InvalidInputError
from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import Job, JobStatus, JobType

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")
INTERNAL = JobType("internal_wait", WAIT, cpu_cores=1.0, ram_gb=10.0, internal=True)
TYPES = (*TEST_TYPES, INTERNAL)


async def test_watcher_hears_progress_then_the_end_and_nothing_after(tmp_path):
    async with started_service(migrated_sqlite(tmp_path), types=TYPES) as (h, _):
        updates = []
        job = await h.service.submit_internal(2, "internal_wait", {"steps": 4, "step_s": 0.05},
                                              watcher=updates.append, description="Batch 1, queued")
        assert job.owner_id == 2 and job.type == "internal_wait"
        await until(lambda: updates and updates[-1].status is JobStatus.COMPLETED, what="the end")
        await asyncio.sleep(0.2)
        statuses = [u.status for u in updates]
        assert statuses[-1] is JobStatus.COMPLETED and statuses.count(JobStatus.COMPLETED) == 1
        assert set(statuses[:-1]) == {JobStatus.RUNNING}
        assert updates[-1].result == {"steps": 4}
        stored = await h.service.get(None, job.id)
        assert stored.job.status is JobStatus.COMPLETED and stored.job.owner_id == 2


async def test_internal_types_are_hidden_from_users_and_refused_by_submit(tmp_path):
    async with started_service(migrated_sqlite(tmp_path), types=TYPES) as (h, _):
        assert "internal_wait" not in [t.name for t in h.service.job_types(ADMIN)]
        with pytest.raises(InvalidInputError, match="unknown task type 'internal_wait'"):
            await h.service.submit(ADMIN, "internal_wait", {})
        with pytest.raises(InvalidInputError, match="not an internal task type"):
            await h.service.submit_internal(1, "sleep", {}, watcher=lambda u: None)


async def test_cancel_tells_the_watcher_and_stop_fails_a_queued_internal_job(tmp_path):
    async with started_service(migrated_sqlite(tmp_path), types=TYPES, machine=FakeMachine(cores=8)) as (h, _):
        hog = await h.service.submit(ADMIN, BIG.name, {"steps": 1000, "step_s": 0.05})  # 10 of 16 GB
        first, second = [], []
        a = await h.service.submit_internal(2, "internal_wait", {"steps": 1}, watcher=first.append)
        await h.service.submit_internal(2, "internal_wait", {"steps": 1}, watcher=second.append)
        assert (await h.service.get(None, a.id)).job.reason.startswith("Insufficient RAM")
        await h.service.cancel(ADMIN, a.id)
        assert [u.status for u in first] == [JobStatus.CANCELLED]
        await h.service.cancel(ADMIN, hog.job.id)
        await until(lambda: second and second[-1].status is JobStatus.COMPLETED, what="b to run")
        c_updates = []
        await h.service.submit(ADMIN, BIG.name, {"steps": 1000, "step_s": 0.05})
        c = await h.service.submit_internal(2, "internal_wait", {"steps": 1}, watcher=c_updates.append)
        assert (await h.service.get(None, c.id)).job.status is JobStatus.QUEUED
    assert [u.status for u in c_updates] == [JobStatus.FAILED]
    assert c_updates[0].error == "server stopped while the job was running"


async def test_a_queued_internal_job_left_by_a_crash_fails_at_start(tmp_path):
    url = migrated_sqlite(tmp_path)
    # what a crashed process leaves: a queued internal job nobody will collect
    async with started_service(url, types=TYPES) as (h, _):
        left = h.store.add(Job(id=str(uuid.uuid4()), type="internal_wait", owner_id=2, status=JobStatus.QUEUED,
                               priority=0, cpu_cores=1.0, ram_gb=0.1, params={"steps": 1}, created_at=datetime.now(UTC)))
    async with started_service(url, types=TYPES) as (h, _):
        job = (await h.service.get(None, left.id)).job
        assert job.status is JobStatus.FAILED and job.error == "server restarted while the job was running"
