"""A job server that submits work, reports the ids on stdout and waits to be killed (-9) by a test."""

from __future__ import annotations

import asyncio
import json
import sys

from jobs_kit import FakeMachine, started_service

from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import JobStatus

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")


async def main(url: str) -> None:
    async with started_service(url, machine=FakeMachine(total_ram_gb=16.0)) as (h, _):
        svc = h.service
        ids = {
            "plain": (await svc.submit(ADMIN, "sleep", {"steps": 1000, "step_s": 0.05})).job.id,
            "idempotent": (await svc.submit(ADMIN, "idempotent_wait", {"steps": 40, "step_s": 0.05})).job.id,
            "big": (await svc.submit(ADMIN, "big", {"steps": 1000, "step_s": 0.05})).job.id,
            "waiting": (await svc.submit(ADMIN, "big", {"steps": 1, "step_s": 0})).job.id,
        }
        statuses = {k: (await svc.get(None, v)).job.status for k, v in ids.items()}
        expected = {"plain": JobStatus.RUNNING, "idempotent": JobStatus.RUNNING, "big": JobStatus.RUNNING,
                    "waiting": JobStatus.QUEUED}
        if statuses != expected:
            raise SystemExit(f"unexpected statuses {statuses}")
        print(json.dumps(ids), flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
