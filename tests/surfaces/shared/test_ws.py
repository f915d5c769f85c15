"""``/ws`` over a real socket: auth by message or query, two protocols, fan-out through Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets

from kit.app import ADMIN_PASSWORD, free_port, make_settings
from quantdesk.adapters.bus.redis import RedisEventBus
from quantdesk.app import build_runtime, create_app


@pytest.fixture
def ws_server(tmp_path: Path, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings = make_settings(tmp_path, redis_url=redis_url, ws_heartbeat_s=0.3, ws_messages_per_minute=20)
    port = free_port()
    app = create_app(settings, build_runtime(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    base = f"127.0.0.1:{port}"
    token = httpx.post(f"http://{base}/api/v1/auth/login",
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
    yield base, token, redis_url
    server.should_exit = True
    thread.join(10)


async def recv(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.1, deadline - time.monotonic()))
        if pred(msg):
            return msg


async def test_ws_without_credentials_is_refused(ws_server):
    base, _token, _ = ws_server
    async with websockets.connect(f"ws://{base}/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": "garbage"}))
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["error"]["code"] == "UNAUTHORIZED"
        with pytest.raises(websockets.ConnectionClosed):
            await recv(ws)


async def test_breakout_stream_until_first_subscribe_then_only_channels(ws_server):
    base, token, redis_url = ws_server
    bus = RedisEventBus(redis_url)
    await bus.start()
    try:
        async with websockets.connect(f"ws://{base}/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert (await recv(ws))["status"] == "authenticated"
            beat = await recv_until(ws, lambda m: m["type"] == "HEARTBEAT")
            assert isinstance(beat["ts"], int)
            await bus.publish("engine", {"type": "ENGINE_UPDATE", "ts": 1, "data": {"state": "IDLE"}})
            assert (await recv_until(ws, lambda m: m["type"] == "ENGINE_UPDATE"))["data"]["state"] == "IDLE"

            await ws.send(json.dumps({"type": "subscribe", "channels": ["orders", "market:BTC/USDT"]}))
            ack = await recv_until(ws, lambda m: m["type"] == "subscribed")
            assert ack["channels"] == ["market:BTCUSDT", "orders"]
            await bus.publish("engine", {"type": "ENGINE_UPDATE", "ts": 2, "data": {}})
            await bus.publish("u1:orders", {"type": "order", "data": {"order_id": "ord_1", "status": "filled"}})
            await bus.publish("u2:orders", {"type": "order", "data": {"order_id": "someone-else"}})
            await bus.publish("market:BTCUSDT", {"type": "market", "symbol": "BTCUSDT", "data": {"price": 1}})
            got = [await recv(ws), await recv(ws)]
            assert sorted(m["type"] for m in got) == ["market", "order"]
            assert next(m for m in got if m["type"] == "order")["data"]["order_id"] == "ord_1"
            with pytest.raises(TimeoutError):
                await recv(ws, timeout=0.8)  # no engine events, no heartbeats, nobody else's orders
    finally:
        await bus.close()


async def test_query_token_auth_and_bad_channels(ws_server):
    base, token, _ = ws_server
    async with websockets.connect(f"ws://{base}/ws?token={token}") as ws:
        assert (await recv(ws))["status"] == "authenticated"
        await ws.send(json.dumps({"type": "subscribe", "channels": ["nonsense"]}))
        err = await recv_until(ws, lambda m: m["type"] == "error")
        assert err["error"]["code"] == "VALIDATION_ERROR" and "nonsense" in err["error"]["message"]
        await ws.send("not json")
        assert (await recv_until(ws, lambda m: m["type"] == "error"))["error"]["code"] == "VALIDATION_ERROR"


async def test_inbound_messages_are_rate_limited(ws_server):
    base, token, _ = ws_server
    async with websockets.connect(f"ws://{base}/ws?token={token}") as ws:
        await recv(ws)
        for _ in range(21):
            await ws.send(json.dumps({"type": "ping"}))
        err = await recv_until(ws, lambda m: m["type"] == "error")
        assert err["error"]["code"] == "RATE_LIMITED" and err["error"]["retry_after"] >= 1
