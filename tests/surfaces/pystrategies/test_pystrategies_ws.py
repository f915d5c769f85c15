"""``/python/ws`` over a real socket: started, log and stopped events of the caller's strategies only."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets
from tests.surfaces.pystrategies.test_pystrategies_api import TICKER

from kit.app import ADMIN_PASSWORD


async def recv(ws, timeout=15.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.1, deadline - time.monotonic()))
        if pred(msg):
            return msg


async def test_ws_streams_started_log_and_stopped_events(live_server):
    ws_base = live_server.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=live_server) as client:
        token = (await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
                 ).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        r = await client.post("/python/upload", files={"file": ("t.py", TICKER.encode())}, data={"name": "Ticker"},
                              headers=h)
        sid = r.json()["strategy_id"]
        async with websockets.connect(f"{ws_base}/python/ws?token={token}") as ws:
            hello = await recv(ws)
            assert hello == {"type": "connected", "data": {"user": "admin"}}
            pid = (await client.post(f"/python/start/{sid}", headers=h)).json()["pid"]
            started = await recv_until(ws, lambda m: m["type"] == "strategy_started")
            assert started["data"]["id"] == sid and started["data"]["pid"] == pid
            assert started["data"]["name"] == "Ticker" and started["data"]["trigger"] == "user"
            line = await recv_until(ws, lambda m: m["type"] == "strategy_log")
            assert line["data"]["id"] == sid and line["data"]["message"] == "INFO: Strategy initialized"
            assert (await client.post(f"/python/stop/{sid}", headers=h)).status_code == 200
            stopped = await recv_until(ws, lambda m: m["type"] == "strategy_stopped")
            assert stopped["data"]["id"] == sid and stopped["data"]["status"] == "stopped"
            assert stopped["data"]["exited"] is False and stopped["data"]["reason"] == "stopped by user"


async def test_ws_without_valid_token_is_refused(live_server):
    ws_base = live_server.replace("http://", "ws://")
    async with websockets.connect(f"{ws_base}/python/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": "garbage"}))
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["data"]["error_code"] == "UNAUTHORIZED"
