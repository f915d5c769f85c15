"""FluxScan scans in the one task queue: /api/system/queue, task events, and cancel from either side."""

from __future__ import annotations

import asyncio

from tests.surfaces.fluxscan.test_fluxscan_api import CODE_ALWAYS, _scanner, _wait_scan, _watchlist

SLOW = "total = 0\nfor i in range(3_000_000):\n    total += i\nsignal = None\n"


async def _nifty(api, headers) -> int:
    watchlists = (await api.client.get("/api/watchlists", headers=headers)).json()
    return next(w for w in watchlists if w["name"] == "NIFTY 50")["id"]


async def _scan_task(api, headers, scan_id: int, timeout_s: float = 30.0) -> dict:
    """The scan's task, found through the owner's task list (params.scan_id links the two)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        tasks = (await api.client.get("/api/system/tasks", headers=headers)).json()["tasks"]
        found = [t for t in tasks if t["task_type"] == "scan" and t["params"].get("scan_id") == scan_id]
        if found:
            return found[0]
        assert loop.time() < deadline, f"no task for scan {scan_id}: {tasks}"
        await asyncio.sleep(0.02)


async def _wait_task(api, headers, task_id: str, timeout_s: float = 30.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        body = (await api.client.get(f"/api/system/tasks/{task_id}", headers=headers)).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.05)


async def test_running_scan_is_in_the_queue_for_its_owner_only_and_task_delete_cancels_it(api):
    await api.auth()
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    sid = await _scanner(api, alice, code=SLOW, name="Slow")
    started = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": await _nifty(api, alice)},
                                     headers=alice)).json()
    task = await _scan_task(api, alice, started["scan_id"])
    assert task["status"] == "running" and task["estimated_cpu_cores"] == 0
    queue = (await api.client.get("/api/system/queue", headers=alice)).json()
    assert [t["task_id"] for t in queue["running_tasks"] if t["task_type"] == "scan"] == [task["task_id"]]
    assert {t["task_type"] for t in queue["running_tasks"]} <= {"scan", "scan_batch"}  # and its batches
    assert (await api.client.get("/api/system/queue", headers=bob)).json()["running_tasks"] == []
    for method in ("GET", "DELETE"):
        r = await api.client.request(method, f"/api/system/tasks/{task['task_id']}", headers=bob)
        assert r.status_code == 404

    r = await api.client.delete(f"/api/system/tasks/{task['task_id']}", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    final = await _wait_scan(api, alice, started["scan_id"], timeout_s=30)
    assert final["status"] == "cancelled" and final["symbols_scanned"] < 50
    queue = (await api.client.get("/api/system/queue", headers=alice)).json()
    assert queue["running_tasks"] == [] and queue["queued_tasks"] == []  # its batches went with it


async def test_scan_cancel_endpoint_cancels_its_task(api):
    h = await api.auth()
    sid = await _scanner(api, h, code=SLOW, name="Slow")
    started = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": await _nifty(api, h)},
                                     headers=h)).json()
    task = await _scan_task(api, h, started["scan_id"])
    r = await api.client.post(f"/scan/api/scan/cancel/{started['scan_id']}", headers=h)
    assert r.status_code == 200
    done = await _wait_task(api, h, task["task_id"])
    assert done["status"] == "cancelled" and done["result"]["scan_id"] == started["scan_id"]


async def test_completed_scan_publishes_task_events_and_result(api):
    h = await api.auth()
    subscription = api.app.state.jobs.subscribe()
    try:
        sid = await _scanner(api, h, code=CODE_ALWAYS)
        wid = await _watchlist(api, h, ["RELIANCE", "TCS", "INFY"])
        started = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": wid},
                                         headers=h)).json()
        final = await _wait_scan(api, h, started["scan_id"], timeout_s=60)
        assert final["status"] == "completed"
        task = await _scan_task(api, h, started["scan_id"])
        done = await _wait_task(api, h, task["task_id"])
        assert done["status"] == "completed" and done["progress"] == 100
        assert done["result"] == {"scan_id": started["scan_id"], "symbols_scanned": 3, "total_symbols": 3,
                                  "signals_found": final["signals_found"]}
        events = []
        async with asyncio.timeout(10):
            while not events or events[-1]["type"] != "task_completed":
                _topic, message = await subscription.get()
                if message["data"]["task_id"] == task["task_id"]:
                    events.append(message)
        types = [e["type"] for e in events]
        assert types[:2] == ["task_queued", "task_running"] and types[-1] == "task_completed"
        assert "task_description_update" in types
        assert events[0]["data"]["task_type"] == "scan"
    finally:
        subscription.close()
