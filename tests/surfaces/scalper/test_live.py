"""With the simulated live feed running: market data on /ws, tick-marked positions, the bot's signals."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import websockets

from kit.app import make_settings
from surfaces.scalper.conftest import dec, serve, ws_subscribe, ws_until


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # 60x real time: a simulated 1m bar closes every second
    with serve(make_settings(tmp_path_factory.mktemp("live"), live_feed_speed=60)) as server:
        yield server


async def test_market_channel_carries_the_reference_market_message(live):
    async with websockets.connect(live.ws_url) as ws:
        await ws_subscribe(ws, live.login(), ["market:BTCUSDT"])
        message = await ws_until(ws, lambda m: m["type"] == "market", timeout=15)
        assert message["symbol"] == "BTCUSDT"
        data = message["data"]
        assert {"price", "bid", "ask", "volume_24h", "change_24h", "timestamp"} <= set(data)
        assert data["bid"] < data["ask"] and data["timestamp"].endswith("Z")


async def test_open_position_is_marked_by_live_ticks(live):
    _, headers = live.new_user()
    async with httpx.AsyncClient(base_url=live.url, headers=headers) as http, websockets.connect(live.ws_url) as ws:
        await ws_subscribe(ws, headers["Authorization"][7:], ["positions"])
        r = await http.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "market",
                                                    "quantity": 0.001})
        entry = dec(r)["avg_fill_price"]
        prices = set()
        while len(prices) < 2:  # position updates follow the ticks
            message = await ws_until(ws, lambda m: m["type"] == "position", timeout=15)
            data = message["data"]
            assert data["quantity"] == Decimal("0.001") and data["entry_price"] == entry
            assert data["unrealized_pnl"] == (data["current_price"] - entry) * Decimal("0.001")
            prices.add(message["data"]["current_price"])


async def test_bot_runs_enabled_strategies_and_publishes_signals(live):
    _, headers = live.new_user()
    async with httpx.AsyncClient(base_url=live.url, headers=headers) as http, websockets.connect(live.ws_url) as ws:
        await ws_subscribe(ws, headers["Authorization"][7:], ["signals", "orders"])
        r = await http.put("/api/v1/strategies/sma_cross", json={"parameters": {"fast": 1, "slow": 2,
                                                                                "size_fraction": 0.1}})
        assert r.status_code == 200, r.text
        r = await http.post("/api/v1/bot/start", json={"paper_trading": True, "strategies": ["sma_cross"]})
        assert r.json()["active_strategies"] == ["sma_cross"]
        signal = await ws_until(ws, lambda m: m["type"] == "signal", timeout=60)
        assert signal["data"]["strategy"] == "sma_cross" and signal["data"]["symbol"] == "BTCUSDT"
        assert signal["data"]["action"] in ("buy", "sell", "close") and signal["data"]["timestamp"].endswith("Z")
        status = (await http.get("/api/v1/bot/status")).json()
        sma = next(s for s in status["strategies"] if s["name"] == "sma_cross")
        assert status["status"] == "running" and sma["signals_today"] >= 1
        stopped = (await http.post("/api/v1/bot/stop", json={"close_positions": True})).json()
        assert stopped["open_positions"] == 0
        listed = (await http.get("/api/v1/strategies")).json()["strategies"]
        assert next(s for s in listed if s["name"] == "sma_cross")["performance"]["total_signals"] >= 1
