"""Job queue throughput: 200 small jobs submitted at once, on the local executor and on Ray.

Prints, per executor and workload: wall time, throughput (jobs/s), mean submit latency, queue
wait (created -> started, p50/p95) and the dispatch overhead of a no-op job (started ->
completed as recorded, i.e. handing the job to a worker and persisting its result).

    .venv/bin/python bench/bench_jobs.py [--jobs 200] [--no-ray]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.db.engine import make_engine, migrate
from quantdesk.adapters.db.jobs import SqlJobStore
from quantdesk.adapters.executors.local import LocalExecutor
from quantdesk.adapters.executors.resources import machine_resources
from quantdesk.services.job_ports import JobType
from quantdesk.services.jobs import JobService
from quantdesk.services.jobtypes import BUILTIN_TYPES

NOOP = JobType("noop", "quantdesk.services.jobtypes:sleep_steps", cpu_cores=0.5, ram_gb=0.1)
WORKLOADS = {
    "noop": ("noop", {"steps": 1, "step_s": 0}),
    "demo_backtest(2k bars)": ("demo_backtest", {"n_bars": 2000}),
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(executor, resources, n_jobs: int, folder: Path, label: str) -> None:
    url = f"sqlite:///{folder}/{label}.db"
    migrate(url)
    service = JobService(SqlJobStore(make_engine(url)), executor, resources, InMemoryEventBus(),
                         types=(*BUILTIN_TYPES, NOOP), tick_s=0.2)
    t0 = time.perf_counter()
    await service.start()
    print(f"\n== {label}: executor started in {time.perf_counter() - t0:.2f} s")
    try:
        # warm the workers so the figures are about queueing, not process start-up
        warm = [await service.submit(None, "noop", {"steps": 1, "step_s": 0}) for _ in range(4)]
        for view in warm:
            await service.wait(view.job.id, 120)
        for name, (job_type, params) in WORKLOADS.items():
            submit_times: list[float] = []

            async def submit(job_type=job_type, params=params, submit_times=submit_times):
                s = time.perf_counter()
                view = await service.submit(None, job_type, params)
                submit_times.append(time.perf_counter() - s)
                return view

            start = time.perf_counter()
            views = await asyncio.gather(*(submit() for _ in range(n_jobs)))
            jobs = [await service.wait(v.job.id, 600, poll_s=0.02) for v in views]
            wall = time.perf_counter() - start
            failed = [j for j in jobs if j.status.value != "completed"]
            waits = [(j.started_at - j.created_at).total_seconds() for j in jobs]
            runs = [(j.completed_at - j.started_at).total_seconds() for j in jobs]
            print(f"{name:>24}: {n_jobs} jobs in {wall:6.2f} s = {n_jobs / wall:7.1f} jobs/s"
                  f" | submit {statistics.mean(submit_times) * 1000:6.1f} ms/job"
                  f" | queue wait p50 {_pct(waits, 0.5):5.2f} s p95 {_pct(waits, 0.95):5.2f} s"
                  f" | started->completed mean {statistics.mean(runs) * 1000:6.1f} ms"
                  f" | wall/job {wall / n_jobs * 1000:6.1f} ms" + (f" | {len(failed)} FAILED" if failed else ""))
    finally:
        await service.stop()


async def main(n_jobs: int, with_ray: bool) -> None:
    res = machine_resources()
    print(f"machine: {res.cpu_cores:.0f} cores, {res.total_ram_gb:.1f} GB RAM ({res.available_ram_gb:.1f} available);"
          f" noop and demo_backtest each estimate 0.5 cores -> {int(res.cpu_cores / 0.5)} run at once")
    with tempfile.TemporaryDirectory() as tmp:
        await _run(LocalExecutor(), machine_resources, n_jobs, Path(tmp), "local")
        if with_ray:
            try:
                from quantdesk.adapters.executors.ray import RayExecutor
            except ImportError:
                print("\n== ray: not installed (pip install ray) - skipped")
                return
            ray_executor = RayExecutor("local", num_cpus=int(res.cpu_cores))
            await _run(ray_executor, ray_executor.resources, n_jobs, Path(tmp), "ray")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, not args.no_ray))
