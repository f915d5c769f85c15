"""SqlJobStore on SQLite and PostgreSQL: round trip, queue order, compare-and-set updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from jobs_kit import migrated_sqlite

from quantdesk.adapters.db.accounts import SqlAccountStore
from quantdesk.adapters.db.engine import make_engine, migrate
from quantdesk.adapters.db.jobs import SqlJobStore
from quantdesk.services.accounts import Role
from quantdesk.services.job_ports import Job, JobStatus

T0 = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with eng.begin() as c:
            c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        eng.dispose()
        migrate(url)
        engine = make_engine(url)
        SqlAccountStore(engine).add_user("owner", "x", Role.USER, T0)
    else:
        engine = make_engine(migrated_sqlite(tmp_path))
    yield SqlJobStore(engine)
    engine.dispose()


def _job(i: int, priority: int = 0, owner_id: int | None = 1) -> Job:
    return Job(id=f"00000000-0000-0000-0000-{i:012d}", type="demo_backtest", owner_id=owner_id,
               status=JobStatus.QUEUED, priority=priority, cpu_cores=0.5, ram_gb=0.25,
               params={"seed": i, "name": "ETH_USDT", "nested": {"a": [1, 2.5]}}, created_at=T0 + timedelta(seconds=i))


def test_job_round_trips_with_json_and_utc_times(store):
    added = store.add(_job(1))
    assert added.seq is not None
    got = store.get(added.id)
    assert got == added
    assert got.created_at.tzinfo is not None and got.created_at == T0 + timedelta(seconds=1)
    assert store.update(added.id, expect=frozenset({JobStatus.QUEUED}), status=JobStatus.RUNNING, runner="r1",
                        started_at=T0, progress=12.5, description="Fetching historical data...")
    assert store.update(added.id, result={"final_equity": 1.25, "trades": [1, 2]}, error=None)
    got = store.get(added.id)
    assert got.status is JobStatus.RUNNING and got.progress == 12.5 and got.started_at == T0
    assert got.result == {"final_equity": 1.25, "trades": [1, 2]}
    assert store.get("missing") is None


def test_active_orders_by_priority_then_fifo_and_list_filters(store):
    for i, priority in ((1, 0), (2, 5), (3, 0), (4, 5)):
        store.add(_job(i, priority, owner_id=1 if i % 2 else None))
    store.update(_job(3).id, status=JobStatus.COMPLETED)
    assert [j.id[-1] for j in store.active()] == ["2", "4", "1"]
    assert [j.id[-1] for j in store.list()] == ["4", "3", "2", "1"]
    assert [j.id[-1] for j in store.list(owner_id=1)] == ["3", "1"]
    assert [j.id[-1] for j in store.list(statuses=frozenset({JobStatus.COMPLETED}))] == ["3"]
    assert len(store.list(limit=2)) == 2


def test_update_is_compare_and_set_on_status_and_runner(store):
    job = store.add(_job(1))
    running = frozenset({JobStatus.RUNNING})
    assert not store.update(job.id, expect=running, status=JobStatus.COMPLETED)
    assert store.update(job.id, expect=frozenset({JobStatus.QUEUED}), status=JobStatus.RUNNING, runner="a")
    assert not store.update(job.id, expect=running, expect_runner="b", status=JobStatus.FAILED)
    assert store.update(job.id, expect=running, expect_runner="a", status=JobStatus.FAILED)
    with pytest.raises(ValueError, match="unknown job column"):
        store.update(job.id, colour="red")
