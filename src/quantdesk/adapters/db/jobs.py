"""SQLAlchemy implementation of the JobStore port."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from quantdesk.adapters.db.tables import jobs
from quantdesk.services.job_ports import ACTIVE, Job, JobStatus

_COLUMNS = frozenset(c.name for c in jobs.columns) - {"seq", "id"}


def _job(row) -> Job:
    return Job(
        id=row.id, type=row.type, owner_id=row.owner_id, status=JobStatus(row.status), priority=row.priority,
        cpu_cores=row.cpu_cores, ram_gb=row.ram_gb, params=row.params or {}, created_at=row.created_at,
        progress=row.progress, description=row.description, reason=row.reason, result=row.result,
        error=row.error, started_at=row.started_at, completed_at=row.completed_at, seq=row.seq,
    )


class SqlJobStore:
    def __init__(self, engine: Engine):
        self._engine = engine

    def add(self, job: Job) -> Job:
        with self._engine.begin() as conn:
            res = conn.execute(
                insert(jobs).values(
                    id=job.id, type=job.type, owner_id=job.owner_id, status=job.status.value,
                    priority=job.priority, progress=job.progress, description=job.description, reason=job.reason,
                    cpu_cores=job.cpu_cores, ram_gb=job.ram_gb, params=job.params, result=job.result,
                    error=job.error, created_at=job.created_at, started_at=job.started_at,
                    completed_at=job.completed_at,
                )
            )
            seq = res.inserted_primary_key[0]
        return replace(job, seq=seq)

    def get(self, job_id: str) -> Job | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _job(row) if row else None

    def active(self) -> list[Job]:
        query = (
            select(jobs)
            .where(jobs.c.status.in_([s.value for s in ACTIVE]))
            .order_by(jobs.c.priority.desc(), jobs.c.seq)
        )
        with self._engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def active_after(self, seq: int) -> tuple[list[Job], int]:
        query = (
            select(jobs)
            .where(jobs.c.seq > seq, jobs.c.status.in_([s.value for s in ACTIVE]))
            .order_by(jobs.c.seq)
        )
        with self._engine.connect() as conn:
            latest = conn.execute(select(func.max(jobs.c.seq))).scalar() or 0
            return [_job(r) for r in conn.execute(query)], int(latest)

    def list(self, *, owner_id: int | None = None, statuses: frozenset[JobStatus] | None = None,
             limit: int = 100) -> list[Job]:
        query = select(jobs).order_by(jobs.c.seq.desc()).limit(limit)
        if owner_id is not None:
            query = query.where(jobs.c.owner_id == owner_id)
        if statuses:
            query = query.where(jobs.c.status.in_([s.value for s in statuses]))
        with self._engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def update(self, job_id: str, *, expect: frozenset[JobStatus] | None = None, expect_runner: str | None = None,
               **values: Any) -> bool:
        unknown = set(values) - _COLUMNS
        if unknown:
            raise ValueError(f"unknown job column(s): {sorted(unknown)}")
        if "status" in values:
            values["status"] = JobStatus(values["status"]).value
        query = update(jobs).where(jobs.c.id == job_id).values(**values)
        if expect is not None:
            query = query.where(jobs.c.status.in_([s.value for s in expect]))
        if expect_runner is not None:
            query = query.where(jobs.c.runner == expect_runner)
        with self._engine.begin() as conn:
            return conn.execute(query).rowcount > 0
