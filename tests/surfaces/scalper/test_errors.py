"""Every documented error path of the Scalper API in its documented body, and per-user isolation."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import websockets

from kit.app import make_settings
from surfaces.scalper.conftest import dec, serve, ws_subscribe, ws_until


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = dec(r)
    assert set(body) == {"error", "request_id"} and body["request_id"].startswith("req_")
    error = body["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if field is not None:
        assert error["details"].get("field") == field, error
    return error


async def test_insufficient_balance_names_required_and_available(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        r = await http.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "market",
                                                    "quantity": 100})
        error = assert_error(r, 400, "INSUFFICIENT_BALANCE")
        assert error["details"]["available"] == 10_000 and error["details"]["required"] > 10_000
        assert dec(await http.get("/api/v1/positions"))["positions"] == []


async def test_order_and_position_refusals(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        order = {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": 0.001}
        r = await http.post("/api/v1/orders", json={**order, "side": "sell", "reduce_only": True})
        assert "no position" in assert_error(r, 400, "ORDER_REJECTED")["message"]
        assert_error(await http.post("/api/v1/positions/BTCUSDT/close"), 404, "POSITION_NOT_FOUND")
        assert_error(await http.post("/api/v1/positions/NOPEUSDT/close"), 404, "POSITION_NOT_FOUND")
        assert_error(await http.delete("/api/v1/orders/ord_999_1"), 404, "NOT_FOUND")
        error = assert_error(await http.put("/api/v1/leverage/BTCUSDT", json={"leverage": 150}), 400,
                             "VALIDATION_ERROR", "leverage")
        assert "150" in error["message"] and "125" in error["message"] and error["details"]["max_leverage"] == 125
        assert_error(await http.put("/api/v1/leverage/BTCUSDT", json={"leverage": 0}), 400, "VALIDATION_ERROR",
                     "leverage")
        assert_error(await http.post("/api/v1/orders", json={**order, "type": "limit"}), 400, "VALIDATION_ERROR",
                     "price")
        assert_error(await http.post("/api/v1/orders", json={**order, "type": "stop_market"}), 400,
                     "VALIDATION_ERROR", "stop_price")
        assert_error(await http.post("/api/v1/orders", json={**order, "type": "stop_limit", "price": 10}), 400,
                     "VALIDATION_ERROR", "stop_price")
        assert_error(await http.post("/api/v1/orders", json={**order, "quantity": 0}), 400, "VALIDATION_ERROR",
                     "quantity")
        assert_error(await http.post("/api/v1/orders", json={**order, "quantity": -1}), 400, "VALIDATION_ERROR",
                     "quantity")
        assert_error(await http.post("/api/v1/orders", json={**order, "quantity": 0.0000001}), 400,
                     "VALIDATION_ERROR", "quantity")
        assert_error(await http.post("/api/v1/orders", json={**order, "side": "hold"}), 400, "VALIDATION_ERROR",
                     "side")
        assert_error(await http.post("/api/v1/orders", json={**order, "type": "trailing"}), 400, "VALIDATION_ERROR",
                     "type")
        assert_error(await http.post("/api/v1/orders", json={**order, "time_in_force": "GTD"}), 400,
                     "VALIDATION_ERROR", "time_in_force")
        assert_error(await http.post("/api/v1/orders", json={**order, "symbol": "NOPEUSDT"}), 400,
                     "VALIDATION_ERROR", "symbol")
        assert_error(await http.post("/api/v1/orders", json={**order, "stoploss": 5}), 400, "VALIDATION_ERROR",
                     "stoploss")
        assert_error(await http.post("/api/v1/orders", content=b"{not json", headers={"content-type": "application/json"}),
                     400, "VALIDATION_ERROR")
        r = await http.post("/api/v1/orders", json={**order, "stop_loss": 1, "take_profit": 1.2, "type": "limit",
                                                    "price": 1.5})
        assert_error(r, 400, "VALIDATION_ERROR", "take_profit")
        assert_error(await http.post("/api/v1/bot/start", json={"paper_trading": False}), 400, "VALIDATION_ERROR",
                     "paper_trading")
        assert (await http.get("/api/v1/bot/status")).json()["status"] == "stopped"
        assert_error(await http.post("/api/v1/bot/start", json={"strategies": ["nope"]}), 400, "VALIDATION_ERROR",
                     "strategies")
        body = {"strategy": "momentum", "symbol": "BTCUSDT", "start_date": "2024-02-01", "end_date": "2024-01-01"}
        assert_error(await http.post("/api/v1/backtest", json=body), 400, "VALIDATION_ERROR", "start_date")
        assert_error(await http.post("/api/v1/backtest", json={**body, "strategy": "nope", "end_date": "2024-03-01"}),
                     400, "VALIDATION_ERROR", "strategy")
        assert_error(await http.post("/api/v1/backtest", json={**body, "leverage": 500, "end_date": "2024-03-01"}),
                     400, "VALIDATION_ERROR", "leverage")
        assert_error(await http.get("/api/v1/backtest/bt_nope"), 404, "NOT_FOUND")


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/trades", {"limit": 1001}, "limit"),
    ("/api/v1/trades", {"limit": 0}, "limit"),
    ("/api/v1/trades", {"offset": "abc"}, "offset"),
    ("/api/v1/trades", {"offset": -1}, "offset"),
    ("/api/v1/trades", {"start_time": "2024-02-01T00:00:00Z", "end_time": "2024-01-01T00:00:00Z"}, "start_time"),
    ("/api/v1/trades", {"start_time": "yesterday"}, "start_time"),
    ("/api/v1/pnl", {"period": "yearly"}, "period"),
    ("/api/v1/positions", {"side": "flat"}, "side"),
])
async def test_bad_query_parameters_are_400_naming_the_field(scalper, path, params, field):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        assert_error(await http.get(path, params=params), 400, "VALIDATION_ERROR", field)


async def test_trade_history_pages_and_filters(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        for _ in range(3):
            await http.post("/api/v1/orders", json={"symbol": "ETHUSDT", "side": "buy", "type": "market",
                                                    "quantity": 0.01})
            assert (await http.post("/api/v1/positions/ETHUSDT/close")).status_code == 200
        everything = dec(await http.get("/api/v1/trades"))
        assert everything["total_count"] == 3
        page = dec(await http.get("/api/v1/trades", params={"limit": 1, "offset": 1}))
        assert page["total_count"] == 3 and [t["id"] for t in page["trades"]] == [everything["trades"][1]["id"]]
        assert page["summary"] == everything["summary"]
        assert dec(await http.get("/api/v1/trades", params={"symbol": "BTCUSDT"}))["total_count"] == 0
        assert dec(await http.get("/api/v1/trades", params={"end_time": "2000-01-01T00:00:00Z"}))["total_count"] == 0
        newest = everything["trades"][0]["exit_time"]
        r = dec(await http.get("/api/v1/trades", params={"start_time": newest, "symbol": "ETH_USDT"}))
        assert r["total_count"] >= 1 and all(t["exit_time"] >= newest for t in r["trades"])
        assert sum(t["pnl"] for t in everything["trades"]) == everything["summary"]["total_pnl"]


async def test_a_user_never_sees_another_users_orders_or_positions(scalper):
    _, alice = scalper.new_user()
    _, bob = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url) as http, websockets.connect(scalper.ws_url) as ws:
        await ws_subscribe(ws, bob["Authorization"][7:], ["orders", "positions"])
        r = await http.post("/api/v1/orders", headers=alice,
                            json={"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": 0.001})
        assert r.status_code == 200
        resting = (await http.post("/api/v1/orders", headers=alice, json={
            "symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.001, "price": 1})).json()
        assert dec(await http.get("/api/v1/positions", headers=bob))["positions"] == []
        assert_error(await http.delete(f"/api/v1/orders/{resting['order_id']}", headers=bob), 404, "NOT_FOUND")
        assert_error(await http.post("/api/v1/positions/BTCUSDT/close", headers=bob), 404, "POSITION_NOT_FOUND")
        assert (await http.get("/api/v1/account", headers=bob)).json()["account_id"] != \
            (await http.get("/api/v1/account", headers=alice)).json()["account_id"]
        assert (await http.post("/api/v1/positions/BTCUSDT/close", headers=alice)).status_code == 200
        assert dec(await http.get("/api/v1/trades", headers=bob))["total_count"] == 0
        mine = (await http.post("/api/v1/orders", headers=bob, json={
            "symbol": "ETHUSDT", "side": "buy", "type": "market", "quantity": 0.01})).json()
        first = await ws_until(ws, lambda m: m["type"] in ("order", "position"))
        # bob's socket carried nothing of alice's: the first private message is about his own order
        assert first["data"]["symbol"] == "ETHUSDT"
        if first["type"] == "order":
            assert first["data"]["order_id"] == mine["order_id"]


ENDPOINTS = [
    ("GET", "/api/v1/account"), ("GET", "/api/v1/balance"), ("GET", "/api/v1/positions"),
    ("GET", "/api/v1/trades"), ("POST", "/api/v1/orders"), ("DELETE", "/api/v1/orders/ord_1_1"),
    ("POST", "/api/v1/positions/BTCUSDT/close"), ("POST", "/api/v1/positions/close-all"),
    ("PUT", "/api/v1/leverage/BTCUSDT"), ("GET", "/api/v1/bot/status"), ("POST", "/api/v1/bot/start"),
    ("POST", "/api/v1/bot/stop"), ("GET", "/api/v1/pnl"), ("GET", "/api/v1/strategies"),
    ("PUT", "/api/v1/strategies/momentum"), ("POST", "/api/v1/backtest"), ("GET", "/api/v1/backtest/bt_1"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_credentials(scalper, method, path):
    async with httpx.AsyncClient(base_url=scalper.url) as http:
        r = await http.request(method, path, json={"quantity": 1} if method in ("POST", "PUT") else None)
        assert_error(r, 401, "UNAUTHORIZED")
        r = await http.request(method, path, headers={"X-API-Key": "qd_not_a_key"})
        assert_error(r, 401, "UNAUTHORIZED")


def test_rate_limited_reply_carries_retry_after_and_headers(tmp_path):
    with serve(make_settings(tmp_path, live_feed_speed=0, rate_limit_read=3)) as server:
        _, headers = server.new_user()
        with httpx.Client(base_url=server.url, headers=headers) as http:
            replies = [http.get("/api/v1/balance") for _ in range(4)]
        assert [r.status_code for r in replies[:3]] == [200, 200, 200]
        assert replies[0].headers["X-RateLimit-Limit"] == "3" and replies[0].headers["X-RateLimit-Remaining"] == "2"
        error = assert_error(replies[3], 429, "RATE_LIMITED")
        assert replies[3].json()["error"]["retry_after"] == int(error["retry_after"])  # an integer on the wire
        assert 1 <= error["retry_after"] <= 60
        assert f"{error['retry_after']} seconds" in error["message"] and int(replies[3].headers["X-RateLimit-Reset"]) > 0
        assert Decimal(replies[3].headers["X-RateLimit-Remaining"]) == 0
