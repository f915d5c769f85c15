"""The same jobs on Ray: identical results to the local executor, progress, failure and cancel.

Starts one private local Ray instance (2 CPUs) for the module: about 6-8 s on a 2-core machine.
"""

from __future__ import annotations

import pytest
from jobs_kit import FakeMachine, migrated_sqlite, started_service

from quantdesk.services.accounts import Principal, Role
from quantdesk.services.job_ports import JobStatus, JobType

ray = pytest.importorskip("ray")

from quantdesk.adapters.executors.ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow

ADMIN = Principal(1, "admin", Role.ADMIN, "bearer", "t1")
# more than half of the fake 1.5 GB machine, and small enough for any Ray node
HALF = JobType("half", "quantdesk.services.jobtypes:sleep_steps", cpu_cores=0.5, ram_gb=1.0)
BACKTEST = {"seed": 11, "n_bars": 4000, "fast": 8, "slow": 40}


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


async def test_same_backtest_gives_identical_results_on_local_and_ray(tmp_path, ray_instance):
    async with started_service(migrated_sqlite(tmp_path, "local.db")) as (local, _):
        view = await local.service.submit(ADMIN, "demo_backtest", BACKTEST)
        on_local = await local.service.wait(view.job.id, 60)
    async with started_service(migrated_sqlite(tmp_path, "ray.db"), executor=RayExecutor("local")) as (h, sub):
        view = await h.service.submit(ADMIN, "demo_backtest", BACKTEST)
        on_ray = await h.service.wait(view.job.id, 120)
        types = h.types_for(view.job.id, sub)
    assert on_local.status is on_ray.status is JobStatus.COMPLETED
    assert on_ray.result == on_local.result
    assert types[:2] == ["task_queued", "task_running"] and types[-1] == "task_completed"
    assert "task_description_update" in types


async def test_ray_admission_failure_and_cancel(tmp_path, ray_instance):
    async with started_service(migrated_sqlite(tmp_path), executor=RayExecutor("local"),
                               machine=FakeMachine(cores=2, total_ram_gb=1.5, available_ram_gb=1.5)) as (h, _):
        h.service.register(HALF)
        running = await h.service.submit(ADMIN, "half", {"steps": 2000, "step_s": 0.05})
        queued = await h.service.submit(ADMIN, "half", {"steps": 1, "step_s": 0})
        assert queued.job.reason == "Insufficient RAM: 0.5 GB available, 1.0 GB required"
        await h.service.cancel(ADMIN, running.job.id)
        assert (await h.service.wait(queued.job.id, 60)).status is JobStatus.COMPLETED
        failing = await h.service.submit(ADMIN, "sleep", {"steps": 2, "step_s": 0, "fail_at": 1})
        failed = await h.service.wait(failing.job.id, 60)
        assert failed.status is JobStatus.FAILED and failed.error == "RuntimeError: failed at step 1 as asked"
        assert (await h.service.get(None, running.job.id)).job.status is JobStatus.CANCELLED


MACD = """\
close = df['close']
macd = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
hist = (macd - macd.ewm(span=9, adjust=False).mean()).to_numpy()
signal = 'BUY' if hist[-1] > 0 else 'SELL'
metrics = {'hist': float(hist[-1])}
"""


async def _scan_on(h, tmp_path, frames) -> tuple[list, list]:
    import asyncio

    from quantdesk.adapters.sandbox.scan_batches import SCAN_BATCH_JOB, JobScannerExecutor

    h.service.register(SCAN_BATCH_JOB)
    executor = JobScannerExecutor(h.service, tmp_path / "spool")
    executor.bind(asyncio.get_running_loop())
    seen: list[tuple[str, int]] = []
    results = await asyncio.to_thread(executor.run, MACD, {}, frames, lambda s, d, t: seen.append((s, d)),
                                      owner_id=2, label="Scan 1")
    assert not any((tmp_path / "spool").iterdir())  # the spool is cleared after the run
    return results, seen


async def test_scan_batch_gives_the_same_results_on_local_and_ray(tmp_path, ray_instance):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    index = pd.date_range("2025-01-01", periods=120, freq="D", tz="UTC")
    frames = {f"S{i:02d}": pd.DataFrame({c: 100 + rng.normal(0, 1, 120).cumsum() for c in
                                         ("open", "high", "low", "close", "volume")}, index=index) for i in range(30)}
    async with started_service(migrated_sqlite(tmp_path, "local.db")) as (local, _):
        on_local, _ = await _scan_on(local, tmp_path / "l", frames)
    async with started_service(migrated_sqlite(tmp_path, "ray.db"), executor=RayExecutor("local")) as (h, _):
        on_ray, seen = await _scan_on(h, tmp_path / "r", frames)
        (batch,) = [j for j in await h.service.list_jobs(None) if j.type == "scan_batch"]
    assert [r.symbol for r in on_ray] == list(frames) and all(r.error is None for r in on_ray)
    assert [(r.symbol, r.signal, r.metrics) for r in on_ray] == [(r.symbol, r.signal, r.metrics) for r in on_local]
    assert seen[-1] == ("S29", 30)  # progress reached the caller, through Ray's mailbox
    assert batch.status is JobStatus.COMPLETED and batch.owner_id == 2 and batch.result["symbols"] == 30
