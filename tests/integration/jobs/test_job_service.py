"""The job service on SQLite with the local (process) executor: admission, order, cancel, restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jobs_kit import FakeMachine, migrated_sqlite, started_service, until

from quantdesk.core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.jobs import RESTART_REASON, JobService

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")
ALICE = Principal(2, "alice", Role.USER, "bearer", "t2")
BOB = Principal(3, "bob", Role.USER, "bearer", "t3")
HERE = Path(__file__).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _status(service: JobService, job_id: str) -> JobStatus:
    return (await service.get(None, job_id)).job.status


async def test_demo_backtest_completes_with_progress_events_in_order(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, sub):
        view = await h.service.submit(ADMIN, "demo_backtest", {"n_bars": 3000})
        job = await h.service.wait(view.job.id, 60)
        assert job.status is JobStatus.COMPLETED
        assert job.progress == 100.0 and job.result["bars"] == 3000
        assert job.started_at >= job.created_at and job.completed_at >= job.started_at
        types = h.types_for(job.id, sub)
        assert types[:2] == ["task_queued", "task_running"]
        assert types[-1] == "task_completed"
        assert "task_description_update" in types[2:-1]


async def test_jobs_needing_more_than_half_the_ram_run_one_after_the_other(tmp_path):
    machine = FakeMachine(cores=8, total_ram_gb=16.0, available_ram_gb=16.0)
    async with started_service(migrated_sqlite(tmp_path), machine=machine) as (h, sub):
        first = await h.service.submit(ADMIN, "big", {"steps": 5, "step_s": 0.05})
        second = await h.service.submit(ADMIN, "big", {"steps": 2, "step_s": 0.01})
        assert first.job.status is JobStatus.RUNNING
        assert second.job.status is JobStatus.QUEUED
        assert second.position == 1
        assert second.job.reason == "Insufficient RAM: 6.0 GB available, 10.0 GB required"
        queue = await h.service.queue(ADMIN)
        assert [j.id for j in queue.running] == [first.job.id]
        assert [(v.job.id, v.position) for v in queue.queued] == [(second.job.id, 1)]

        done_first = await h.service.wait(first.job.id, 30)
        done_second = await h.service.wait(second.job.id, 30)
        assert done_first.status is done_second.status is JobStatus.COMPLETED
        assert done_second.started_at >= done_first.completed_at
        assert done_second.reason is None
        order = [(e["type"], e["data"]["task_id"]) for e in h.drain(sub)
                 if e["type"] in ("task_running", "task_completed")]
        assert order == [("task_running", first.job.id), ("task_completed", first.job.id),
                         ("task_running", second.job.id), ("task_completed", second.job.id)]


async def test_real_ram_shortage_keeps_job_queued_until_memory_frees(tmp_path):
    machine = FakeMachine(total_ram_gb=16.0, available_ram_gb=0.5)
    async with started_service(migrated_sqlite(tmp_path), machine=machine) as (h, _):
        view = await h.service.submit(ADMIN, "small", {"steps": 1, "step_s": 0})
        assert view.job.status is JobStatus.QUEUED
        assert view.job.reason == "Insufficient RAM: 0.5 GB available, 1.0 GB required"
        machine.available_ram_gb = 12.0  # another program exits; the periodic check notices
        assert (await h.service.wait(view.job.id, 30)).status is JobStatus.COMPLETED


async def test_queue_is_priority_first_then_fifo(tmp_path):
    async with started_service(migrated_sqlite(tmp_path), machine=FakeMachine(total_ram_gb=16.0)) as (h, sub):
        blocker = await h.service.submit(ADMIN, "big", {"steps": 200, "step_s": 0.05})
        low1 = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0}, priority=0)
        high = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0}, priority=5)
        low2 = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0}, priority=0)
        queue = await h.service.queue(ADMIN)
        assert [(v.job.id, v.position) for v in queue.queued] == [(high.job.id, 1), (low1.job.id, 2),
                                                                  (low2.job.id, 3)]
        assert queue.queued[1].job.reason.startswith("Insufficient RAM")
        await h.service.cancel(ADMIN, blocker.job.id)
        for view in (low1, high, low2):
            await h.service.wait(view.job.id, 30)
        started = [e["data"]["task_id"] for e in h.drain(sub) if e["type"] == "task_running"]
        assert started == [blocker.job.id, high.job.id, low1.job.id, low2.job.id]


async def test_cancel_running_job_stops_its_worker(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, sub):
        view = await h.service.submit(ADMIN, "sleep", {"steps": 1000, "step_s": 0.05})
        await until(lambda: any(e["type"] == "task_description_update" for e in h.drain(sub)), what="progress")
        cancelled = await h.service.cancel(ADMIN, view.job.id)
        assert cancelled.job.status is JobStatus.CANCELLED
        assert "task_cancelled" in h.types_for(view.job.id, sub)
        assert (await h.service.get(None, view.job.id)).job.status is JobStatus.CANCELLED


async def test_cancel_job_that_never_reports_progress_kills_the_worker(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, _):
        view = await h.service.submit(ADMIN, "sleep", {"steps": 1, "step_s": 120})
        pids = await until(lambda: h.executor.worker_pids, what="a worker process")
        await h.service.cancel(ADMIN, view.job.id)
        # cancel returns once the worker is gone: the job cannot keep running
        assert not any(_alive(pid) for pid in pids)
        assert (await h.service.get(None, view.job.id)).job.status is JobStatus.CANCELLED
        # the pool recovers: the next job runs on a fresh worker
        again = await h.service.submit(ADMIN, "sleep", {"steps": 1, "step_s": 0})
        assert (await h.service.wait(again.job.id, 30)).status is JobStatus.COMPLETED


async def test_cancel_queued_job_never_runs_it(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, sub):
        blocker = await h.service.submit(ADMIN, "big", {"steps": 5, "step_s": 0.05})
        queued = await h.service.submit(ALICE, "big", {"steps": 1, "step_s": 0})
        assert queued.job.status is JobStatus.QUEUED
        out = await h.service.cancel(ALICE, queued.job.id)
        assert out.job.status is JobStatus.CANCELLED and out.position is None
        assert (await h.service.wait(blocker.job.id, 30)).status is JobStatus.COMPLETED
        final = (await h.service.get(ALICE, queued.job.id)).job
        assert final.status is JobStatus.CANCELLED and final.started_at is None
        assert h.types_for(queued.job.id, sub) == ["task_queued", "task_cancelled"]
        with pytest.raises(ConflictError):
            await h.service.cancel(ALICE, queued.job.id)


async def test_users_see_and_cancel_only_their_own_jobs(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, _):
        blocker = await h.service.submit(ADMIN, "big", {"steps": 200, "step_s": 0.05})
        mine = await h.service.submit(ALICE, "big", {"steps": 1, "step_s": 0})
        theirs = await h.service.submit(BOB, "big", {"steps": 1, "step_s": 0})
        alice_queue = await h.service.queue(ALICE)
        assert alice_queue.running == []
        assert [(v.job.id, v.position) for v in alice_queue.queued] == [(mine.job.id, 1)]
        assert [v.position for v in (await h.service.queue(BOB)).queued] == [2]
        assert len((await h.service.queue(ADMIN)).queued) == 2
        assert [j.id for j in await h.service.list_jobs(ALICE)] == [mine.job.id]
        with pytest.raises(NotFoundError):
            await h.service.get(ALICE, theirs.job.id)
        with pytest.raises(NotFoundError):
            await h.service.cancel(ALICE, blocker.job.id)
        await h.service.cancel(ADMIN, theirs.job.id)  # admins may cancel anyone's


async def test_failing_job_is_failed_with_its_error(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, sub):
        view = await h.service.submit(ADMIN, "sleep", {"steps": 3, "step_s": 0, "fail_at": 2})
        job = await h.service.wait(view.job.id, 30)
        assert job.status is JobStatus.FAILED
        assert job.error == "RuntimeError: failed at step 2 as asked"
        assert h.types_for(job.id, sub)[-1] == "task_failed"


async def test_submit_validates_type_params_and_role(tmp_path):
    async with started_service(migrated_sqlite(tmp_path)) as (h, _):
        with pytest.raises(InvalidInputError, match="unknown task type 'nope'"):
            await h.service.submit(ALICE, "nope")
        with pytest.raises(InvalidInputError, match="unexpected keyword argument 'colour'"):
            await h.service.submit(ALICE, "demo_backtest", {"colour": "red"})
        with pytest.raises(ForbiddenError):
            await h.service.submit(ALICE, "sleep")
        with pytest.raises(InvalidInputError, match="priority"):
            await h.service.submit(ADMIN, "sleep", priority=1000)


async def test_restart_after_kill_requeues_idempotent_fails_others_and_runs_queued(tmp_path):
    url = migrated_sqlite(tmp_path)
    server = subprocess.Popen([sys.executable, str(HERE / "crashing_server.py"), url],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line, "the crashing server did not report its jobs"
        ids = json.loads(line)
    finally:
        server.kill()  # SIGKILL: no shutdown code runs
        server.wait(10)
    async with started_service(url, machine=FakeMachine(total_ram_gb=16.0)) as (new, _):
        for name in ("plain", "big"):
            job = (await new.service.get(None, ids[name])).job
            assert job.status is JobStatus.FAILED and job.error == RESTART_REASON
        assert (await new.service.wait(ids["waiting"], 30)).status is JobStatus.COMPLETED
        rerun = await new.service.wait(ids["idempotent"], 30)
        assert rerun.status is JobStatus.COMPLETED and rerun.result == {"steps": 40}


async def test_stop_fails_running_job_and_queued_jobs_survive_restart(tmp_path):
    url = migrated_sqlite(tmp_path)
    async with started_service(url) as (old, _):
        running = await old.service.submit(ADMIN, "big", {"steps": 1000, "step_s": 0.05})
        queued = await old.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0})
        assert queued.job.status is JobStatus.QUEUED
    async with started_service(url) as (new, _):
        stopped = (await new.service.get(None, running.job.id)).job
        assert stopped.status is JobStatus.FAILED and "stopped while the job was running" in stopped.error
        assert (await new.service.wait(queued.job.id, 30)).status is JobStatus.COMPLETED
