"""The started service's in-memory queue stays true to the database when another process changes it."""

from __future__ import annotations

from jobs_kit import TEST_TYPES, FakeMachine, migrated_sqlite, started_service, until

from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.db.engine import make_engine
from quantdesk.adapters.db.jobs import SqlJobStore
from quantdesk.adapters.executors.local import LocalExecutor
from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.jobs import JobService

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")


def _other_process(url: str) -> JobService:
    """A second service on the same database that never starts its dispatcher (as the CLI does)."""
    return JobService(SqlJobStore(make_engine(url)), LocalExecutor(), FakeMachine(), InMemoryEventBus(),
                      types=TEST_TYPES)


async def test_job_submitted_by_another_process_is_queued_in_order_and_runs(tmp_path):
    url = migrated_sqlite(tmp_path)
    async with started_service(url, machine=FakeMachine(total_ram_gb=16.0)) as (h, _):
        blocker = await h.service.submit(ADMIN, "big", {"steps": 200, "step_s": 0.05})
        mine = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0})
        theirs = await _other_process(url).submit(None, "big", {"steps": 1, "step_s": 0})
        last = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0})
        assert last.position == 3
        queue = await h.service.queue(ADMIN)
        assert [(v.job.id, v.position) for v in queue.queued] == [(mine.job.id, 1), (theirs.job.id, 2),
                                                                  (last.job.id, 3)]
        await h.service.cancel(ADMIN, blocker.job.id)
        for view in (mine, theirs, last):
            assert (await h.service.wait(view.job.id, 30)).status is JobStatus.COMPLETED


async def test_job_cancelled_by_another_process_leaves_the_queue_and_never_runs(tmp_path):
    url = migrated_sqlite(tmp_path)
    async with started_service(url, machine=FakeMachine(total_ram_gb=16.0)) as (h, _):
        blocker = await h.service.submit(ADMIN, "big", {"steps": 200, "step_s": 0.05})
        doomed = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0})
        after = await h.service.submit(ADMIN, "big", {"steps": 1, "step_s": 0})
        await _other_process(url).cancel(None, doomed.job.id)

        async def gone() -> bool:
            return [v.job.id for v in (await h.service.queue(ADMIN)).queued] == [after.job.id]

        await until(gone, what="the periodic re-read to drop the cancelled job")
        await h.service.cancel(ADMIN, blocker.job.id)
        assert (await h.service.wait(after.job.id, 30)).status is JobStatus.COMPLETED
        final = (await h.service.get(ADMIN, doomed.job.id)).job
        assert final.status is JobStatus.CANCELLED and final.started_at is None
