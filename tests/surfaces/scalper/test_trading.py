"""Paper trading over real HTTP and a real /ws: order → position → partial close → close → history → P&L."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import websockets

from surfaces.scalper.conftest import dec, ws_all, ws_subscribe, ws_until

FEE = Decimal("0.0004")  # taker fee of paper accounts: every market fill pays it


async def test_market_order_partial_close_close_history_and_pnl_agree_with_the_fills(scalper):
    user_id, headers = scalper.new_user()
    token = headers["Authorization"][7:]
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http, \
            websockets.connect(scalper.ws_url) as ws:
        await ws_subscribe(ws, token, ["orders", "positions", "account"])

        r = await http.post("/api/v1/orders", json={
            "symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": 0.01, "price": None,
            "stop_price": None, "stop_loss": 1, "take_profit": 10_000_000, "reduce_only": False,
            "time_in_force": "GTC"})
        assert r.status_code == 200, r.text
        opened = dec(r)
        assert opened["order_id"].startswith("ord_") and opened["status"] == "filled"
        assert opened["symbol"] == "BTCUSDT" and opened["side"] == "buy" and opened["type"] == "market"
        assert opened["quantity"] == opened["filled_quantity"] == Decimal("0.01")
        entry = opened["avg_fill_price"]
        assert entry > 0 and opened["created_at"].endswith("Z") and opened["updated_at"].endswith("Z")

        event, position_event = await ws_all(
            ws, lambda m: m["type"] == "order" and m["data"]["order_id"] == opened["order_id"],
            lambda m: m["type"] == "position")
        assert event["data"]["status"] == "filled" and event["data"]["avg_fill_price"] == entry
        assert event["data"]["filled_quantity"] == Decimal("0.01") and event["data"]["timestamp"].endswith("Z")
        event = position_event
        assert event["data"]["symbol"] == "BTCUSDT" and event["data"]["side"] == "long"
        assert event["data"]["quantity"] == Decimal("0.01") and event["data"]["entry_price"] == entry

        positions = dec(await http.get("/api/v1/positions"))
        [p] = positions["positions"]
        assert p["id"].startswith("pos_") and p["symbol"] == "BTCUSDT" and p["side"] == "long"
        assert p["quantity"] == Decimal("0.01") and p["entry_price"] == entry and p["leverage"] == 10
        assert p["margin"] == entry * Decimal("0.01") / 10 == positions["total_margin_used"]
        assert p["stop_loss"] == 1 and p["take_profit"] == 10_000_000
        assert p["unrealized_pnl"] == (p["current_price"] - entry) * Decimal("0.01")
        assert p["liquidation_price"] < entry and p["opened_at"].endswith("Z")

        r = await http.post("/api/v1/positions/BTCUSDT/close", json={"quantity": 0.004, "type": "market"})
        assert r.status_code == 200, r.text
        first = dec(r)
        assert first["side"] == "sell" and first["status"] == "filled" and first["filled_quantity"] == Decimal("0.004")
        [p] = dec(await http.get("/api/v1/positions", params={"symbol": "BTC/USDT"}))["positions"]
        assert p["quantity"] == Decimal("0.006")

        r = await http.post("/api/v1/positions/BTCUSDT/close")
        assert r.status_code == 200, r.text
        second = dec(r)
        assert second["quantity"] == second["filled_quantity"] == Decimal("0.006")
        assert dec(await http.get("/api/v1/positions"))["positions"] == []
        event = await ws_until(ws, lambda m: m["type"] == "position" and m["data"]["quantity"] == 0)
        assert event["data"]["symbol"] == "BTCUSDT"

        history = dec(await http.get("/api/v1/trades"))
        assert history["total_count"] == 2
        newest, oldest = history["trades"]
        for trade, close, qty in ((oldest, first, Decimal("0.004")), (newest, second, Decimal("0.006"))):
            exit_price = close["avg_fill_price"]
            commission = qty * entry * FEE + qty * exit_price * FEE  # entry fee split pro rata, exit fee in full
            assert trade["id"].startswith("trade_") and trade["symbol"] == "BTCUSDT" and trade["side"] == "long"
            assert trade["quantity"] == qty and trade["entry_price"] == entry and trade["exit_price"] == exit_price
            assert trade["commission"] == commission
            assert trade["pnl"] == qty * (exit_price - entry) - commission == close["realized_pnl"]
            assert trade["strategy"] == "manual" and trade["duration_seconds"] >= 0
            assert trade["entry_time"] == p["opened_at"] or trade["entry_time"].endswith("Z")
        total = oldest["pnl"] + newest["pnl"]
        assert history["summary"]["total_pnl"] == total

        pnl = dec(await http.get("/api/v1/pnl", params={"period": "all"}))
        assert pnl["period"] == "all" and pnl["trades"] == 2
        assert pnl["realized_pnl"] == total == pnl["total_pnl"] and pnl["unrealized_pnl"] == 0
        assert pnl["winning_trades"] + pnl["losing_trades"] <= 2
        assert pnl["by_symbol"] == [{"symbol": "BTCUSDT", "pnl": total, "trades": 2}]
        assert pnl["by_strategy"] == [{"strategy": "manual", "pnl": total, "trades": 2}]

        balance = dec(await http.get("/api/v1/balance"))
        [usdt] = balance["balances"]
        assert usdt["asset"] == "USDT" and usdt["total"] == 10_000 + total == usdt["free"] and usdt["locked"] == 0
        assert balance["total_equity_usd"] == 10_000 + total and balance["used_margin"] == 0


async def test_limit_order_rests_and_cancels_with_an_order_event(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http, \
            websockets.connect(scalper.ws_url) as ws:
        await ws_subscribe(ws, headers["Authorization"][7:], ["orders"])
        r = await http.post("/api/v1/orders", json={"symbol": "ETHUSDT", "side": "buy", "type": "limit",
                                                    "quantity": 0.5, "price": 1, "time_in_force": "gtc"})
        assert r.status_code == 200, r.text
        order = r.json()
        assert order["status"] == "accepted" and order["filled_quantity"] == 0 and order["avg_fill_price"] is None
        r = await http.delete(f"/api/v1/orders/{order['order_id']}")
        assert r.status_code == 200, r.text
        cancelled = r.json()
        assert cancelled["order_id"] == order["order_id"] and cancelled["status"] == "cancelled"
        assert cancelled["cancelled_at"].endswith("Z")
        event = await ws_until(ws, lambda m: m["type"] == "order" and m["data"]["status"] == "cancelled")
        assert event["data"]["order_id"] == order["order_id"]
        r = await http.delete(f"/api/v1/orders/{order['order_id']}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "ORDER_REJECTED"


async def test_close_all_and_leverage_and_bot_controls(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        r = await http.put("/api/v1/leverage/ETHUSDT", json={"leverage": 5})
        assert r.json() == {"symbol": "ETHUSDT", "leverage": 5, "max_leverage": 100}
        for symbol, qty in (("BTCUSDT", 0.002), ("ETHUSDT", 0.1)):
            r = await http.post("/api/v1/orders", json={"symbol": symbol, "side": "sell", "type": "market",
                                                        "quantity": qty})
            assert r.status_code == 200, r.text
        positions = dec(await http.get("/api/v1/positions", params={"side": "short"}))["positions"]
        eth = next(p for p in positions if p["symbol"] == "ETHUSDT")
        assert len(positions) == 2 and eth["leverage"] == 5 and eth["margin"] == eth["entry_price"] * eth["quantity"] / 5
        closed = dec(await http.post("/api/v1/positions/close-all"))
        assert closed["closed_positions"] == 2
        assert closed["total_realized_pnl"] == sum(o["pnl"] for o in closed["orders"])
        assert {o["symbol"] for o in closed["orders"]} == {"BTCUSDT", "ETHUSDT"}
        pnl = dec(await http.get("/api/v1/pnl", params={"period": "all"}))
        assert pnl["realized_pnl"] == closed["total_realized_pnl"] and pnl["trades"] == 2

        r = await http.post("/api/v1/bot/start", json={"paper_trading": True, "strategies": ["momentum", "sma_cross"]})
        assert r.json() == {"status": "started", "message": "Trading bot started successfully",
                            "paper_trading": True, "active_strategies": ["momentum", "sma_cross"]}
        status = (await http.get("/api/v1/bot/status")).json()
        assert status["status"] == "running" and status["trading_enabled"] and status["paper_trading"]
        assert status["started_at"].endswith("Z") and status["uptime_seconds"] >= 0
        by_name = {s["name"]: s for s in status["strategies"]}
        assert by_name["sma_cross"]["enabled"] and by_name["momentum"]["signals_today"] == 0
        assert status["performance"]["daily_trades"] >= 2
        r = await http.post("/api/v1/bot/stop", json={"close_positions": True})
        assert r.json()["status"] == "stopped" and r.json()["open_positions"] == 0
        assert (await http.get("/api/v1/bot/status")).json()["status"] == "stopped"


async def test_strategies_list_and_update_validated_against_the_schema(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers) as http:
        listed = (await http.get("/api/v1/strategies")).json()["strategies"]
        momentum = next(s for s in listed if s["name"] == "momentum")
        assert momentum["type"] == "technical" and momentum["enabled"] is True
        assert {"rsi_period": 14, "overbought": 70, "oversold": 30}.items() <= momentum["parameters"].items()
        assert set(momentum["performance"]) == {"total_signals", "accuracy", "avg_return"}
        r = await http.put("/api/v1/strategies/momentum",
                           json={"enabled": True, "parameters": {"rsi_period": 21, "overbought": 75, "oversold": 25}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["name"] == "momentum" and body["enabled"] is True and body["updated_at"].endswith("Z")
        assert {"rsi_period": 21, "overbought": 75, "oversold": 25}.items() <= body["parameters"].items()
        r = await http.put("/api/v1/strategies/momentum", json={"parameters": {"rsi_period": "fast"}})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "parameters.rsi_period"
        r = await http.put("/api/v1/strategies/momentum", json={"parameters": {"nonsense": 1}})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "parameters.nonsense"
        r = await http.put("/api/v1/strategies/no_such_strategy", json={"enabled": True})
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


async def test_backtest_runs_as_a_job_and_reports_in_percent(scalper):
    _, headers = scalper.new_user()
    async with httpx.AsyncClient(base_url=scalper.url, headers=headers, timeout=60) as http:
        r = await http.post("/api/v1/backtest", json={
            "strategy": "momentum", "symbol": "BTCUSDT", "start_date": "2024-01-01", "end_date": "2024-02-01",
            "initial_balance": 10000, "leverage": 2, "commission_rate": 0.001,
            "parameters": {"rsi_period": 14, "overbought": 70, "oversold": 30}})
        assert r.status_code == 200, r.text
        started = r.json()
        assert started["backtest_id"].startswith("bt_") and started["status"] in ("queued", "running", "completed")
        body = None
        for _ in range(600):  # poll the status endpoint as a client would (at most a minute)
            body = (await http.get(f"/api/v1/backtest/{started['backtest_id']}")).json()
            if body["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert body is not None and body["status"] == "completed", body
        result = body["result"]
        assert body["progress"] == 100 and result["initial_balance"] == 10000
        assert abs(result["total_return"] - (result["final_balance"] / 10000 - 1) * 100) < 1e-4
        assert result["total_trades"] == result["winning_trades"] + result["losing_trades"]
        assert 0 <= result["win_rate"] <= 100 and result["max_drawdown"] >= 0
        for key in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "profit_factor", "avg_trade_duration"):
            assert key in result
        other = scalper.new_user()[1]
        r = await http.get(f"/api/v1/backtest/{started['backtest_id']}", headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
