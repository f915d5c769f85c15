"""Scans run as batches in the job system: tasks in the queue, user code in job worker processes.

A scan over NIFTY 50 on a 2-core machine is a few ``scan_batch`` tasks, two running at once; each
runs in a local job worker (a separate interpreter), whose sandbox child runs the user's code.
"""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
from tests.surfaces.fluxscan.test_fluxscan_api import _scanner, _wait_scan
from tests.surfaces.fluxscan.test_fluxscan_tasks import _nifty

from quantdesk.services.job_ports import MachineResources

# about 0.1 s per symbol: a 25-symbol batch runs for a few seconds
SLOW = "total = 0\nfor i in range(1_500_000):\n    total += i\nsignal = 'BUY' if total > 0 else None\n"
QUICK = "signal = 'BUY' if df['close'].iloc[-1] > 0 else None\nmetrics = {'bars': float(len(df))}\n"


async def _tasks(api, headers, task_type: str = "scan_batch") -> list[dict]:
    tasks = (await api.client.get("/api/system/tasks", headers=headers)).json()["tasks"]
    return [t for t in tasks if t["task_type"] == task_type]


async def _until(check, timeout_s: float = 60.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _sandboxes() -> list[psutil.Process]:
    """The server's descendants that run user scanner code."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if any("scanner_child.py" in part for part in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


async def _start(api, headers, code: str) -> int:
    sid = await _scanner(api, headers, code=code, name="Batched")
    r = await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": await _nifty(api, headers)},
                              headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["scan_id"]


async def test_scan_runs_as_batch_tasks_in_job_workers_not_in_the_server(api):
    h = await api.auth()
    other = await api.make_user("other")
    scan_id = await _start(api, h, SLOW)

    running = await _until(lambda: _running_batches(api, h), what="a running scan_batch task")
    assert "batch" in running[0]["description"] and running[0]["estimated_cpu_cores"] == 1
    assert await _tasks(api, other) == []  # the owner's tasks, like the scan's own
    sandboxes = await _until(lambda: asyncio.to_thread(_sandboxes), what="a sandbox process")
    for sandbox in sandboxes:  # user code runs two levels down: server -> job worker -> sandbox
        parent = sandbox.parent()
        assert parent.pid != os.getpid()
        assert "quantdesk.adapters.executors.local" in " ".join(parent.cmdline())

    final = await _wait_scan(api, h, scan_id, timeout_s=120)
    assert final["status"] == "completed" and final["symbols_scanned"] == 50 and final["signals_found"] == 50
    batches = await _tasks(api, h)
    assert len(batches) >= 2 and {b["status"] for b in batches} == {"completed"}
    assert sum(b["result"]["symbols"] for b in batches) == 50
    assert sum(b["result"]["signals"] for b in batches) == 50


async def _running_batches(api, headers) -> list[dict]:
    return [t for t in await _tasks(api, headers) if t["status"] == "running"]


async def test_cancelling_a_batch_task_cancels_the_scan_and_its_other_batches(api):
    h = await api.auth()
    scan_id = await _start(api, h, SLOW)
    running = await _until(lambda: _running_batches(api, h), what="a running scan_batch task")
    r = await api.client.delete(f"/api/system/tasks/{running[0]['task_id']}", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    final = await _wait_scan(api, h, scan_id, timeout_s=30)
    assert final["status"] == "cancelled" and final["symbols_scanned"] < 50
    assert all(b["status"] in ("cancelled", "completed") for b in await _tasks(api, h))
    (scan_task,) = await _tasks(api, h, "scan")
    assert scan_task["status"] == "cancelled"


async def test_batches_wait_in_the_queue_for_a_free_core(api):
    h = await api.auth()
    jobs = api.app.state.jobs
    jobs.resources = lambda: MachineResources(1.0, 16.0, 16.0)  # one core: one batch at a time
    scan_id = await _start(api, h, SLOW)

    async def waiting():
        return [t for t in await _tasks(api, h) if t["status"] == "queued" and t["reason"]]

    (queued,) = await _until(waiting, what="a batch waiting for a core")
    assert queued["reason"] == "Insufficient CPU: 0.0 cores available, 1.0 cores required"
    queue = (await api.client.get("/api/system/queue", headers=h)).json()
    assert len(queue["running_tasks"]) == 2  # the scan itself (no core reserved) and one batch
    final = await _wait_scan(api, h, scan_id, timeout_s=180)
    assert final["status"] == "completed" and final["symbols_scanned"] == 50


async def test_killed_job_worker_fails_the_scan_with_the_reason_and_takes_its_sandbox_along(api):
    h = await api.auth()
    scan_id = await _start(api, h, SLOW)
    await _until(lambda: _running_batches(api, h), what="a running scan_batch task")
    sandboxes = await _until(lambda: asyncio.to_thread(_sandboxes), what="a sandbox process")
    workers = {s.parent().pid for s in sandboxes}
    for pid in workers:
        os.kill(pid, signal.SIGKILL)

    final = await _wait_scan(api, h, scan_id, timeout_s=30)
    assert final["status"] == "failed"
    assert "failed: worker process exited unexpectedly" in final["error"]

    def gone() -> bool:
        return not any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in sandboxes)

    await _until(lambda: asyncio.to_thread(gone), timeout_s=10, what="the sandboxes to die with their worker")

    # the job system recovers: the next scan runs on fresh workers
    quick = await _start(api, h, QUICK)
    assert (await _wait_scan(api, h, quick, timeout_s=120))["status"] == "completed"


async def test_scan_batch_is_not_a_task_type_users_can_submit(api):
    h = await api.auth()
    types = (await api.client.get("/api/system/task-types", headers=h)).json()
    assert "scan_batch" not in str(types)
    r = await api.client.post("/api/system/tasks", json={"type": "scan_batch", "params": {"spool": "/etc"}},
                              headers=h)
    assert r.status_code == 400 and "unknown task type 'scan_batch'" in r.text
