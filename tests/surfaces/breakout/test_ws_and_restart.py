"""The Breakout stream on /ws (per user) and an engine that survives a server restart."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from kit.app import ADMIN_PASSWORD, api_for

from .conftest import breakout_bars, btc_only, engine_state, publish_until, sim_price, user_id


async def _recv_until(ws, predicate, timeout: float = 10.0) -> dict:
    async def loop() -> dict:
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message
    return await asyncio.wait_for(loop(), timeout)


async def test_ws_receives_engine_update_after_start(live_server):
    token = httpx.post(f"{live_server}/api/v1/auth/login",
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers) as client:
        r = await client.put("/api/presets/breakout_v1", json={"scanner_config": {"symbols": ["BTC/USDT"],
                                                                                 "max_candidates": 1}})
        assert r.status_code == 200
        async with websockets.connect(live_server.replace("http://", "ws://") + "/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert (await _recv_until(ws, lambda m: m["type"] == "auth"))["status"] == "authenticated"
            assert (await client.post("/api/engine/start", json={"preset": "breakout_v1", "mode": "paper"})).status_code == 200
            update = await _recv_until(ws, lambda m: engine_state(m, "LEVEL_BUILDING"))
            assert isinstance(update["ts"], int) and update["data"]["preset"] == "breakout_v1"
            assert update["data"]["symbols"] == ["BTC/USDT"] and isinstance(update["data"]["timestamp"], int)
            await client.post("/api/engine/command", json={"command": "pause"})
            assert (await _recv_until(ws, lambda m: m["type"] == "ENGINE_UPDATE"))["data"]["state"] == "PAUSED"
            # a Scalper subscribe ends the Breakout stream for this client
            await ws.send(json.dumps({"type": "subscribe", "channels": ["orders"]}))
            await _recv_until(ws, lambda m: m["type"] == "subscribed")
            await client.post("/api/engine/command", json={"command": "resume"})
            r = await client.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "limit",
                                                          "quantity": 0.01, "price": 1000})
            order = await _recv_until(ws, lambda m: m["type"] in ("order", "ENGINE_UPDATE"))
            assert order["type"] == "order" and order["data"]["order_id"] == r.json()["order_id"]


async def test_running_engine_and_presets_survive_a_restart(db_settings):
    async for api in api_for(db_settings):
        headers = await api.auth()
        uid = await user_id(api, headers)
        await btc_only(api, headers, risk={"risk_per_trade": 0.005, "max_consecutive_losses": 4})
        assert (await api.client.post("/api/engine/start", headers=headers, json={})).status_code == 200
        price = await sim_price(api)
        await publish_until(api, uid, breakout_bars(price), lambda m: engine_state(m, "MANAGING"))
        before = (await api.client.get("/api/engine/status", headers=headers)).json()
        preset = (await api.client.get("/api/presets/breakout_v1", headers=headers)).json()
        positions = (await api.client.get("/api/positions", headers=headers)).json()
    assert before["state"] == "MANAGING" and len(positions) == 1

    async for api in api_for(db_settings):
        headers = await api.auth()
        # the engine is back running before its user returns: bars drive it again
        price = await sim_price(api)
        quiet = [dict(b, data={**b["data"], "open": p, "high": p, "low": p, "close": p})
                 for b in breakout_bars(price)[-3:] for p in [round(float(price), 1)]]
        await publish_until(api, uid, quiet, lambda m: m["type"] in ("ENGINE_UPDATE", "POSITION_UPDATE"))
        after = (await api.client.get("/api/engine/status", headers=headers)).json()
        assert after["state"] in ("LEVEL_BUILDING", "MANAGING") and after["startedAt"] == before["startedAt"]
        assert (after["preset"], after["mode"], after["symbols"]) == ("breakout_v1", "paper", ["BTC/USDT"])
        assert (await api.client.get("/api/presets/breakout_v1", headers=headers)).json() == preset
        assert [p["id"] for p in (await api.client.get("/api/positions", headers=headers)).json()] == \
            [positions[0]["id"]]
        assert (await api.client.get("/api/health")).json()["engine_running"] is True
        assert (await api.client.post("/api/engine/command", headers=headers,
                                      json={"command": "pause"})).status_code == 200

    async for api in api_for(db_settings):
        headers = await api.auth()
        status = (await api.client.get("/api/engine/status", headers=headers)).json()
        assert status["state"] == "PAUSED" and status["startedAt"] == before["startedAt"]
        assert (await api.client.post("/api/engine/stop", headers=headers)).status_code == 200

    async for api in api_for(db_settings):
        headers = await api.auth()
        status = (await api.client.get("/api/engine/status", headers=headers)).json()
        assert status["state"] == "IDLE" and status["startedAt"] is None
        assert (await api.client.get("/api/health")).json()["engine_running"] is False
