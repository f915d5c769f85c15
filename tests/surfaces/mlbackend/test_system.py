"""ML backend system endpoints over HTTP: queue, resources, task commands and the task-events SSE stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from quantdesk.app import build_runtime, create_app
from quantdesk.services.job_ports import JobType, MachineResources
from quantdesk.settings import Settings

PASSWORD = "admin-pass-123"
WAIT = "quantdesk.services.jobtypes:sleep_steps"
BIG = JobType("big", WAIT, cpu_cores=1.0, ram_gb=10.0)  # two of them do not fit in 16 GB


class FakeMachine:
    def __call__(self) -> MachineResources:
        return MachineResources(8.0, 16.0, 16.0)


def _ram_bound(api) -> None:
    jobs = api.app.state.jobs
    jobs.resources = FakeMachine()
    jobs.register(BIG)


async def _submit(api, headers, type_, params, status=202) -> dict:
    r = await api.client.post("/api/system/tasks", json={"type": type_, "params": params}, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _wait_status(api, headers, task_id, statuses=("completed", "failed", "cancelled"), timeout_s=30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = (await api.client.get(f"/api/system/tasks/{task_id}", headers=headers)).json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"task {task_id} still {body['status']}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["/api/system/queue", "/api/system/resources", "/api/system/resources-only",
                                  "/api/system/task-events", "/api/system/tasks"])
async def test_system_endpoints_without_credentials_are_401(api, path):
    r = await api.client.get(path)
    assert r.status_code == 401
    assert "detail" in r.json()


async def test_admin_resources_show_figures_and_every_task(api):
    admin = await api.auth()
    user = await api.make_user("alice")
    _ram_bound(api)
    running = await _submit(api, admin, "big", {"steps": 400, "step_s": 0.05})
    queued = await _submit(api, user, "big", {"steps": 1, "step_s": 0})
    assert running["status"] == "running"
    assert queued["status"] == "queued" and queued["queue_position"] == 1
    assert queued["reason"] == "Insufficient RAM: 6.0 GB available, 10.0 GB required"
    assert queued["message"] == "Task queued due to insufficient resources. Position in queue: 1"

    body = (await api.client.get("/api/system/resources", headers=admin)).json()
    assert body["is_admin"] is True
    assert body["resources"]["cpu"] == {"available_cores": 8, "in_use_cores": 1.0, "usage_percent": 12.5}
    assert body["resources"]["ram"] == {"total_gb": 16.0, "available_gb": 16.0, "in_use_gb": 0.0,
                                        "usage_percent": 0.0}
    queue = body["queue"]
    assert queue["running_count"] == 1 and queue["queued_count"] == 1
    run_item = queue["running_tasks"][0]
    assert run_item["task_id"] == running["task_id"] and run_item["task_type"] == "big"
    assert run_item["estimated_cpu_cores"] == 1.0 and run_item["estimated_ram_gb"] == 10.0
    assert isinstance(run_item["description"], str)
    q_item = queue["queued_tasks"][0]
    assert q_item["task_id"] == queued["task_id"] and q_item["queue_position"] == 1
    assert q_item["queued_at"].endswith("Z") and q_item["estimated_ram_gb"] == 10.0

    only = (await api.client.get("/api/system/resources-only", headers=admin)).json()
    assert set(only) == {"resources"} and set(only["resources"]) == {"cpu", "ram"}
    assert (await api.client.get("/api/system/queue", headers=admin)).json() == queue
    await api.client.delete(f"/api/system/tasks/{running['task_id']}", headers=admin)


async def test_non_admin_sees_only_own_tasks_and_no_resources(api):
    admin = await api.auth()
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    _ram_bound(api)
    blocker = await _submit(api, admin, "big", {"steps": 400, "step_s": 0.05})
    mine = await _submit(api, alice, "big", {"steps": 1, "step_s": 0})
    theirs = await _submit(api, bob, "big", {"steps": 1, "step_s": 0})

    body = (await api.client.get("/api/system/resources", headers=alice)).json()
    assert body["is_admin"] is False and "resources" not in body
    assert body["queue"]["running_count"] == 0 and body["queue"]["running_tasks"] == []
    assert [(t["task_id"], t["queue_position"]) for t in body["queue"]["queued_tasks"]] == [(mine["task_id"], 1)]
    assert "estimated_ram_gb" not in body["queue"]["queued_tasks"][0]
    bob_queue = (await api.client.get("/api/system/queue", headers=bob)).json()
    assert [(t["task_id"], t["queue_position"]) for t in bob_queue["queued_tasks"]] == [(theirs["task_id"], 2)]
    listed = (await api.client.get("/api/system/tasks", headers=alice)).json()["tasks"]
    assert [t["task_id"] for t in listed] == [mine["task_id"]]

    r = await api.client.get("/api/system/resources-only", headers=alice)
    assert r.status_code == 401 and "detail" in r.json()
    for method in ("GET", "DELETE"):
        r = await api.client.request(method, f"/api/system/tasks/{blocker['task_id']}", headers=alice)
        assert r.status_code == 404
    cancelled = (await api.client.delete(f"/api/system/tasks/{mine['task_id']}", headers=alice)).json()
    assert cancelled["status"] == "cancelled"
    await api.client.delete(f"/api/system/tasks/{blocker['task_id']}", headers=admin)


async def test_submit_get_cancel_and_errors(api):
    admin = await api.auth()
    user = await api.make_user("carol")
    task = await _submit(api, user, "demo_backtest", {"n_bars": 2000})
    done = await _wait_status(api, user, task["task_id"])
    assert done["status"] == "completed" and done["progress"] == 100.0
    assert done["result"]["bars"] == 2000 and done["completed_at"].endswith("Z")
    r = await api.client.delete(f"/api/system/tasks/{task['task_id']}", headers=user)
    assert r.status_code == 409 and "already completed" in r.json()["detail"]

    running = await _submit(api, admin, "sleep", {"steps": 1000, "step_s": 0.05})
    r = await api.client.delete(f"/api/system/tasks/{running['task_id']}", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    r = await api.client.post("/api/system/tasks", json={"type": "nope"}, headers=user)
    assert r.status_code == 400 and "unknown task type 'nope'" in r.json()["detail"]
    r = await api.client.post("/api/system/tasks", json={"type": "demo_backtest", "params": {"x": 1}}, headers=user)
    assert r.status_code == 400 and "params" in r.json()["detail"]
    r = await api.client.post("/api/system/tasks", json={"type": "sleep"}, headers=user)
    assert r.status_code == 403
    r = await api.client.get("/api/system/tasks/does-not-exist", headers=user)
    assert r.status_code == 404
    types = (await api.client.get("/api/system/task-types", headers=user)).json()["task_types"]
    names = [t["name"] for t in types]
    assert "demo_backtest" in names and "sleep" not in names  # admin-only types are hidden from users


# -- SSE against a real server ---------------------------------------------------------------


@pytest.fixture
def sse_server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/qd.db", data_dir=tmp_path / "data",
                        secret_key_file=tmp_path / "secret.key", admin_password=PASSWORD,
                        rate_limit_read=0, rate_limit_write=0, rate_limit_backtest=0)
    app = create_app(settings, build_runtime(settings))
    app.state.sse_heartbeat_s = 0.3
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def _events(client: httpx.AsyncClient, token: str) -> AsyncIterator[dict]:
    async with client.stream("GET", "/api/system/task-events", params={"token": token}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


async def _collect(stream: AsyncIterator[dict], until_type: str, task_id: str | None = None,
                   timeout_s: float = 30.0) -> list[dict]:
    got: list[dict] = []
    async with asyncio.timeout(timeout_s):  # same task throughout: the stream's context stays in it
        async for event in stream:
            got.append(event)
            if event["type"] == until_type and (task_id is None or event["data"]["task_id"] == task_id):
                return got
    raise AssertionError(f"stream ended before {until_type}")


async def test_task_events_stream_in_order_with_heartbeats(sse_server):
    async with httpx.AsyncClient(base_url=sse_server, timeout=30) as client:
        r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        admin_token = r.json()["access_token"]
        admin = {"Authorization": f"Bearer {admin_token}"}
        r = await client.post("/api/v1/auth/users", headers=admin,
                              json={"username": "dave", "password": "user-pass-123", "role": "user"})
        assert r.status_code == 201
        user_token = (await client.post("/api/v1/auth/login",
                                        json={"username": "dave", "password": "user-pass-123"})).json()["access_token"]

        admin_stream = _events(client, admin_token)
        user_stream = _events(client, user_token)
        first = await _collect(admin_stream, "initial_state")
        assert first == [{"type": "initial_state", "is_admin": True, "data": {
            "running_count": 0, "queued_count": 0, "running_tasks": [], "queued_tasks": []}}]
        user_first = await _collect(user_stream, "initial_state")
        assert user_first[0]["is_admin"] is False

        task = (await client.post("/api/system/tasks", headers=admin,
                                  json={"type": "sleep", "params": {"steps": 3, "step_s": 0.1}})).json()
        seen = await _collect(admin_stream, "task_completed", task["task_id"])
        mine = [e for e in seen if e["type"] != "heartbeat"]
        types = [e["type"] for e in mine]
        assert types[:2] == ["task_queued", "task_running"] and types[-1] == "task_completed"
        assert set(types[2:-1]) == {"task_description_update"} and types[2:-1]
        assert mine[0]["data"] == {"task_id": task["task_id"], "task_type": "sleep", "queue_position": 1}
        assert mine[1]["data"]["task_type"] == "sleep" and isinstance(mine[1]["data"]["description"], str)
        assert mine[-2]["data"]["description"].startswith("Step ")
        assert mine[-1]["data"] == {"task_id": task["task_id"]}

        beats = [e for e in seen if e["type"] == "heartbeat"]
        if not beats:
            beats = [e for e in await _collect(admin_stream, "heartbeat") if e["type"] == "heartbeat"]
        assert beats[0]["is_admin"] is True and beats[0]["timestamp"].endswith("Z")
        assert set(beats[0]["resources"]) == {"cpu", "ram"}

        # the user's stream carried heartbeats without resources, and none of the admin's task events
        user_seen = await _collect(user_stream, "heartbeat")
        user_seen += await _collect(user_stream, "heartbeat")
        assert {e["type"] for e in user_seen} == {"heartbeat"}
        assert all("resources" not in e and e["is_admin"] is False for e in user_seen)
        await admin_stream.aclose()
        await user_stream.aclose()
