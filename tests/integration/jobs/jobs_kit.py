"""Builders for job-service tests: a migrated SQLite file, a fake machine, a started service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.db.accounts import SqlAccountStore
from quantdesk.adapters.db.engine import make_engine, migrate
from quantdesk.adapters.db.jobs import SqlJobStore
from quantdesk.adapters.executors.local import LocalExecutor
from quantdesk.services.accounts import Role
from quantdesk.services.job_ports import Executor, JobType, MachineResources
from quantdesk.services.jobs import JobService
from quantdesk.services.jobtypes import BUILTIN_TYPES

WAIT = "quantdesk.services.jobtypes:sleep_steps"
# each needs more than half of a 16 GB machine
BIG = JobType("big", WAIT, cpu_cores=1.0, ram_gb=10.0)
SMALL = JobType("small", WAIT, cpu_cores=1.0, ram_gb=1.0)
IDEMPOTENT_WAIT = JobType("idempotent_wait", WAIT, cpu_cores=0.5, ram_gb=0.5, idempotent=True)
TEST_TYPES = (*BUILTIN_TYPES, BIG, SMALL, IDEMPOTENT_WAIT)


class FakeMachine:
    """A resource probe reporting fixed figures (the real one reads psutil)."""

    def __init__(self, cores: float = 8.0, total_ram_gb: float = 16.0, available_ram_gb: float = 16.0):
        self.cores = cores
        self.total_ram_gb = total_ram_gb
        self.available_ram_gb = available_ram_gb

    def __call__(self) -> MachineResources:
        return MachineResources(self.cores, self.total_ram_gb, self.available_ram_gb)


def migrated_sqlite(tmp_path: Path, name: str = "jobs.db") -> str:
    """A migrated SQLite file with users 1 (admin), 2 (alice) and 3 (bob), the jobs' owners."""
    url = f"sqlite:///{tmp_path}/{name}"
    migrate(url)
    engine = make_engine(url)
    accounts = SqlAccountStore(engine)
    for name_, role in (("admin", Role.ADMIN), ("alice", Role.USER), ("bob", Role.USER)):
        accounts.add_user(name_, "not-a-real-hash", role, datetime.now(UTC))
    engine.dispose()
    return url


@dataclass
class Harness:
    service: JobService
    executor: Executor
    bus: InMemoryEventBus
    store: SqlJobStore
    events: list[dict] = field(default_factory=list)

    def drain(self, subscription) -> list[dict]:
        while (item := subscription.get_nowait()) is not None:
            self.events.append(item[1])
        return self.events

    def types_for(self, job_id: str, subscription) -> list[str]:
        return [e["type"] for e in self.drain(subscription) if e["data"]["task_id"] == job_id]


@asynccontextmanager
async def started_service(url: str, *, executor: Executor | None = None, machine: Callable | None = None,
                          types=TEST_TYPES) -> AsyncIterator[tuple[Harness, object]]:
    bus = InMemoryEventBus()
    subscription = bus.subscribe("jobs", lossless=True)
    store = SqlJobStore(make_engine(url))
    executor = executor or LocalExecutor(cancel_grace_s=0.3)
    service = JobService(store, executor, machine or FakeMachine(), bus, types=types, tick_s=0.2)
    await service.start()
    try:
        yield Harness(service, executor, bus, store), subscription
    finally:
        await service.stop()
        subscription.close()


async def until(predicate: Callable[[], object], timeout_s: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)
