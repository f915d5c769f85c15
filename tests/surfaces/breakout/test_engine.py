"""Engine control over HTTP: start with a preset, a breakout on live bars opens a paper position, commands, stop."""

from __future__ import annotations

from .conftest import breakout_bars, btc_only, engine_state, publish_until, sim_price, user_id


async def test_engine_start_breakout_opens_a_position_seen_by_both_surfaces(bapi):
    api = bapi
    headers = await api.auth()
    uid = await user_id(api, headers)
    await btc_only(api, headers)
    r = await api.client.get("/api/engine/status", headers=headers)
    assert r.status_code == 200 and r.json()["state"] == "IDLE" and r.json()["startedAt"] is None

    r = await api.client.post("/api/engine/start", headers=headers, json={"preset": "breakout_v1", "mode": "paper"})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["message"] == "Engine started successfully"
    assert r.json()["timestamp"].endswith("Z")
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] == "LEVEL_BUILDING" and status["preset"] == "breakout_v1" and status["mode"] == "paper"
    assert status["slots"] == 3 and status["openPositions"] == 0 and status["startedAt"].endswith("Z")
    assert status["symbols"] == ["BTC/USDT"] and status["dailyR"] == 0 and status["consecutiveLosses"] == 0

    price = await sim_price(api)
    seen = await publish_until(api, uid, breakout_bars(price), lambda m: engine_state(m, "MANAGING"))
    assert any(m["type"] == "position" and m["data"]["quantity"] for m in seen)
    assert any(m["type"] == "POSITION_OPENED" for m in seen)

    positions = (await api.client.get("/api/positions", headers=headers)).json()
    assert len(positions) == 1
    p = positions[0]
    assert p["symbol"] == "BTC/USDT" and p["side"] == "long" and p["mode"] == "momentum"
    assert p["sl"] < p["entry"] < p["tp"] and p["size"] > 0 and p["openedAt"].endswith("Z")
    assert isinstance(p["pnlR"], float)
    # one core: the Scalper surface shows the same position of the same account
    scalper = (await api.client.get("/api/v1/positions", headers=headers)).json()["positions"]
    assert [(s["id"], s["symbol"], s["quantity"], s["stop_loss"]) for s in scalper] == [(p["id"], "BTCUSDT", p["size"], p["sl"])]
    orders = (await api.client.get("/api/orders", headers=headers)).json()
    entry = next(o for o in orders if o["status"] == "filled")
    assert entry["symbol"] == "BTC/USDT" and entry["side"] == "buy" and entry["type"] == "market"
    assert entry["strategy"] == "breakout_engine" and entry["fees"] > 0 and entry["filledAt"].endswith("Z")
    assert {o["status"] for o in orders if o["id"] != entry["id"]} == {"accepted"}  # stop, target, liquidation

    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] == "MANAGING" and status["openPositions"] == 1
    metrics = (await api.client.get("/api/engine/metrics", headers=headers)).json()
    assert metrics["cycleCount"] >= 20 and metrics["totalSignals"] == 1 and metrics["totalTrades"] == 0
    health = (await api.client.get("/api/health")).json()
    assert health["engine_initialized"] is True and health["engine_running"] is True

    r = await api.client.post("/api/engine/stop", headers=headers)
    assert r.status_code == 200 and r.json()["message"] == "Engine stopped successfully"
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] == "IDLE" and status["startedAt"] is None
    # stopping leaves the position with its stop and target
    assert len((await api.client.get("/api/positions", headers=headers)).json()) == 1


async def test_engine_stop_loss_counts_minus_one_r_and_pauses_after_max_consecutive_losses(bapi):
    api = bapi
    headers = await api.auth()
    uid = await user_id(api, headers)
    await btc_only(api, headers, risk={"max_consecutive_losses": 1})
    assert (await api.client.post("/api/engine/start", headers=headers, json={})).status_code == 200
    price = await sim_price(api)
    bars = breakout_bars(price)
    await publish_until(api, uid, bars, lambda m: engine_state(m, "MANAGING"))
    stop = (await api.client.get("/api/positions", headers=headers)).json()[0]["sl"]
    crash = dict(bars[-1], data={**bars[-1]["data"], "timestamp": _next(bars[-1]), "open": float(price),
                                 "high": float(price), "low": round(stop * 0.99, 1), "close": round(stop * 0.995, 1)})
    seen = await publish_until(api, uid, [crash], lambda m: engine_state(m, "PAUSED"))
    assert "consecutive losing trades" in seen[-1]["data"]["reason"]
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] == "PAUSED" and status["consecutiveLosses"] == 1 and status["openPositions"] == 0
    assert -1.2 < status["dailyR"] < -1.0  # the stop's loss plus both fees
    perf = (await api.client.get("/api/performance/metrics", headers=headers)).json()
    assert perf["totalTrades"] == 1 and perf["winRate"] == 0 and perf["avgR"] == status["dailyR"]
    assert perf["maxDrawdownR"] == -status["dailyR"] and perf["consecutiveLosses"] == 1
    equity = (await api.client.get("/api/performance/equity", headers=headers)).json()
    assert [e["cumulativeR"] for e in equity] == [0.0, status["dailyR"]]
    assert equity[0]["value"] == 10000 and equity[1]["value"] < 10000
    metrics = (await api.client.get("/api/engine/metrics", headers=headers)).json()
    assert metrics["totalTrades"] == 1 and metrics["dailyPnlR"] == status["dailyR"]
    # the operator resumes: a new streak
    r = await api.client.post("/api/engine/command", headers=headers, json={"command": "resume"})
    assert r.status_code == 200 and r.json()["command"] == "resume"
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] in ("LEVEL_BUILDING", "SIGNAL_WAIT") and status["consecutiveLosses"] == 0


def _next(bar: dict) -> str:
    from datetime import datetime, timedelta

    at = datetime.fromisoformat(bar["data"]["timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    return at.isoformat().replace("+00:00", "Z")


async def test_engine_commands_follow_the_state_machine(bapi):
    api = bapi
    headers = await api.auth()
    await btc_only(api, headers)
    command = lambda name: api.client.post("/api/engine/command", headers=headers, json={"command": name})  # noqa: E731

    r = await command("pause")
    assert r.status_code == 409 and r.json()["status_code"] == 409 and "IDLE" in r.json()["detail"]
    r = await command("launch_rockets")
    assert r.status_code == 400 and "launch_rockets" in r.json()["detail"] and "pause" in r.json()["detail"]
    assert (await api.client.post("/api/engine/stop", headers=headers)).status_code == 409

    assert (await api.client.post("/api/engine/start", headers=headers, json={"preset": "breakout_v1"})).status_code == 200
    r = await api.client.post("/api/engine/start", headers=headers, json={"preset": "breakout_v1"})
    assert r.status_code == 409 and r.json() == {"detail": r.json()["detail"], "status_code": 409}

    r = await command("pause")
    assert r.status_code == 200 and r.json() == {"success": True, "message": "Command executed successfully",
                                                 "command": "pause", "state": "PAUSED",
                                                 "timestamp": r.json()["timestamp"]}
    assert (await api.client.get("/api/engine/status", headers=headers)).json()["state"] == "PAUSED"
    assert (await command("pause")).status_code == 409
    assert (await command("retry")).status_code == 409
    assert (await command("resume")).json()["state"] == "LEVEL_BUILDING"
    assert (await command("time_stop")).json()["state"] == "LEVEL_BUILDING"

    # a manual position of the same account: panic_exit leaves none
    r = await api.client.post("/api/v1/orders", headers=headers,
                              json={"symbol": "ETHUSDT", "side": "buy", "type": "market", "quantity": 0.1})
    assert r.status_code == 200, r.text
    r = await api.client.post("/api/v1/orders", headers=headers,
                              json={"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.01, "price": 1000})
    assert r.status_code == 200, r.text
    assert (await command("panic_exit")).json()["state"] == "EMERGENCY"
    assert (await api.client.get("/api/positions", headers=headers)).json() == []
    assert not [o for o in (await api.client.get("/api/orders", headers=headers)).json() if o["status"] == "accepted"]
    assert (await command("pause")).status_code == 409
    assert (await command("retry")).json()["state"] == "LEVEL_BUILDING"

    assert (await command("kill_switch")).json()["state"] == "EMERGENCY"
    r = await command("retry")
    assert r.status_code == 409 and "kill switch" in r.json()["detail"]
    assert (await api.client.post("/api/engine/stop", headers=headers)).json()["state"] == "IDLE"
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["state"] == "IDLE" and status["killSwitch"] is False


async def test_engine_start_refuses_bad_input_and_live_mode(bapi):
    api = bapi
    headers = await api.auth()
    start = lambda body: api.client.post("/api/engine/start", headers=headers, json=body)  # noqa: E731
    r = await start({"preset": "breakout_v1", "mode": "live"})
    assert r.status_code == 400 and "live" in r.json()["detail"] and r.json()["status_code"] == 400
    r = await start({"preset": "breakout_v1", "mode": "yolo"})
    assert r.status_code == 400 and "yolo" in r.json()["detail"]
    r = await start({"preset": "nope"})
    assert r.status_code == 400 and "nope" in r.json()["detail"]
    r = await start({"preset": "breakout_v1", "colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    r = await api.client.post("/api/engine/command", headers=headers, json={})
    assert r.status_code == 422 and "command" in r.json()["detail"]
    assert (await api.client.get("/api/engine/status", headers=headers)).json()["state"] == "IDLE"


async def test_breakout_endpoints_need_credentials(bapi):
    api = bapi
    for method, path in [("GET", "/api/engine/status"), ("GET", "/api/engine/metrics"), ("POST", "/api/engine/start"),
                         ("POST", "/api/engine/stop"), ("POST", "/api/engine/command"), ("GET", "/api/positions"),
                         ("GET", "/api/orders"), ("DELETE", "/api/orders/ord_1_1"), ("GET", "/api/presets/"),
                         ("GET", "/api/presets/breakout_v1"), ("PUT", "/api/presets/breakout_v1"),
                         ("POST", "/api/scanner/scan"), ("GET", "/api/scanner/status"),
                         ("GET", "/api/performance/equity"), ("GET", "/api/performance/metrics"),
                         ("GET", "/api/metrics/summary"), ("GET", "/api/metrics/performance"),
                         ("GET", "/api/metrics/health")]:
        r = await api.client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["status_code"] == 401 and r.json()["detail"]


async def test_engines_and_presets_are_per_user(bapi):
    api = bapi
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    await btc_only(api, alice, risk={"risk_per_trade": 0.002})
    assert (await api.client.post("/api/engine/start", headers=alice, json={})).status_code == 200
    assert (await api.client.get("/api/engine/status", headers=bob)).json()["state"] == "IDLE"
    bob_v1 = (await api.client.get("/api/presets/breakout_v1", headers=bob)).json()["config"]
    assert bob_v1["risk"]["risk_per_trade"] == 0.006 and len(bob_v1["scanner_config"]["symbols"]) == 12
    r = await api.client.post("/api/v1/orders", headers=alice,
                              json={"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.01, "price": 1000})
    order_id = r.json()["order_id"]
    r = await api.client.delete(f"/api/orders/{order_id}", headers=bob)
    assert r.status_code == 404 and r.json()["status_code"] == 404
    assert (await api.client.get("/api/orders", headers=bob)).json() == []
    r = await api.client.delete(f"/api/orders/{order_id}", headers=alice)
    assert r.status_code == 200 and r.json()["message"] == "Order canceled successfully"
    assert next(o for o in (await api.client.get("/api/orders", headers=alice)).json()
                if o["id"] == order_id)["status"] == "cancelled"
    r = await api.client.delete(f"/api/orders/{order_id}", headers=alice)
    assert r.status_code == 400 and "cancelled" in r.json()["detail"]
