"""A restart keeps the bot: running or stopped, since when, its strategies and their counts, and strategy settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from kit.app import ADMIN_PASSWORD, api_for
from quantdesk.services.topics import user_topic

from .conftest import serve


def _login(url: str) -> httpx.Client:
    token = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token['access_token']}"})


def _settings_of(c: httpx.Client) -> dict[str, dict]:
    return {s["name"]: {"enabled": s["enabled"], "parameters": s["parameters"]}
            for s in c.get("/api/v1/strategies").json()["strategies"]}


def test_bot_and_strategy_settings_survive_server_restarts(db_settings):
    with serve(db_settings) as first, _login(first.url) as c:
        r = c.put("/api/v1/strategies/momentum", json={"enabled": False,
                                                        "parameters": {"rsi_period": 21, "overbought": 75.5}})
        assert r.status_code == 200, r.text
        r = c.put("/api/v1/strategies/sma_cross", json={"parameters": {"fast": 3, "slow": 8, "size_fraction": "0.25"}})
        assert r.status_code == 200, r.text
        # bad input is refused as before and leaves no trace
        r = c.put("/api/v1/strategies/sma_cross", json={"parameters": {"fast": 9}})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "parameters.fast"
        r = c.put("/api/v1/strategies/momentum", json={"parameters": {"overbought": "nan"}})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "parameters.overbought"
        r = c.post("/api/v1/bot/start", json={"strategies": ["sma_cross", "nope"]})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "strategies"
        assert c.get("/api/v1/bot/status").json()["status"] == "stopped"

        r = c.post("/api/v1/bot/start", json={"paper_trading": True, "strategies": ["sma_cross"]})
        assert r.status_code == 200 and r.json()["active_strategies"] == ["sma_cross"]
        before = c.get("/api/v1/bot/status").json()
        settings_before = _settings_of(c)
    assert before["status"] == "running" and before["started_at"].endswith("Z")
    assert settings_before["momentum"] == {
        "enabled": False, "parameters": {"rsi_period": 21, "overbought": 75.5, "oversold": 30.0,
                                         "allow_short": False, "size_fraction": 1}}
    assert settings_before["sma_cross"] == {
        "enabled": True, "parameters": {"fast": 3, "slow": 8, "allow_short": False, "size_fraction": 0.25}}

    with serve(db_settings) as second, _login(second.url) as c:
        after = c.get("/api/v1/bot/status").json()
        assert after["status"] == "running" and after["trading_enabled"] and after["paper_trading"]
        assert after["started_at"] == before["started_at"]
        assert after["uptime_seconds"] >= before["uptime_seconds"]
        assert after["strategies"] == before["strategies"]
        assert _settings_of(c) == settings_before
        # starting again keeps the original start
        r = c.post("/api/v1/bot/start", json={"strategies": ["sma_cross", "momentum"]})
        assert r.json()["active_strategies"] == ["sma_cross", "momentum"]
        assert c.get("/api/v1/bot/status").json()["started_at"] == before["started_at"]
        r = c.post("/api/v1/bot/stop", json={"close_positions": False})
        assert r.status_code == 200 and r.json()["status"] == "stopped"

    with serve(db_settings) as third, _login(third.url) as c:
        stopped = c.get("/api/v1/bot/status").json()
        assert stopped["status"] == "stopped" and not stopped["trading_enabled"]
        assert stopped["started_at"] is None and stopped["uptime_seconds"] == 0
        settings_after = _settings_of(c)
        assert settings_after["momentum"] == {**settings_before["momentum"], "enabled": True}  # the start enabled it
        assert settings_after["sma_cross"] == settings_before["sma_cross"]


def _bar(at: datetime, close: int) -> dict:
    return {"type": "bar", "symbol": "BTCUSDT", "timeframe": "1m",
            "data": {"timestamp": at.isoformat().replace("+00:00", "Z"), "open": close, "high": close,
                     "low": close, "close": close, "volume": 10}}


async def _publish_bars(runtime, user_id: int, closes: list[int], start: datetime, until) -> list[dict]:
    """Publish 1m bars of BTCUSDT on the bus as the live feed would; the user's messages up to ``until`` one."""
    seen: list[dict] = []
    with runtime.bus.subscribe(user_topic(user_id, "*"), lossless=True) as private:
        for i, close in enumerate(closes):
            await runtime.bus.publish("bars:BTCUSDT", _bar(start + timedelta(minutes=i), close))
        while not seen or not until(seen[-1]):
            seen.append((await private.get(timeout=10))[1])
    return seen


def _signal(message: dict) -> bool:
    return message["type"] == "signal"


def _filled(message: dict) -> bool:
    return message["type"] == "order" and message["data"]["status"] == "filled"


async def test_running_bot_resumes_trading_and_counting_before_its_user_returns(db_settings):
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    async for api in api_for(db_settings):
        runtime = api.app.state.runtime
        headers = await api.auth()
        user_id = (await api.client.get("/api/v1/auth/me", headers=headers)).json()["id"]
        r = await api.client.put("/api/v1/strategies/sma_cross", headers=headers,
                                 json={"parameters": {"fast": 1, "slow": 2, "size_fraction": 0.1}})
        assert r.status_code == 200, r.text
        r = await api.client.post("/api/v1/bot/start", headers=headers, json={"strategies": ["sma_cross"]})
        assert r.status_code == 200, r.text
        before = (await api.client.get("/api/v1/bot/status", headers=headers)).json()
        # SMA(1) crosses above SMA(2) on the last bar; the bot buys (a paper market order fills at once)
        seen = await _publish_bars(runtime, user_id, [100, 99, 98, 100], start, _signal)
        assert (seen[-1]["data"]["strategy"], seen[-1]["data"]["action"]) == ("sma_cross", "buy")
        assert [m["data"]["side"] for m in seen if _filled(m)] == ["buy"]
        counted = (await api.client.get("/api/v1/bot/status", headers=headers)).json()
        assert next(s for s in counted["strategies"] if s["name"] == "sma_cross")["signals_today"] == 1

    async for api in api_for(db_settings):
        runtime = api.app.state.runtime
        await asyncio.sleep(0)  # let the lifespan's market-data task subscribe (it resumes the bots first)
        # no request of the user yet: the resumed bot closes its position on a downward cross
        seen = await _publish_bars(runtime, user_id, [101, 102, 100], start + timedelta(minutes=4), _signal)
        assert (seen[-1]["data"]["strategy"], seen[-1]["data"]["action"]) == ("sma_cross", "close")
        headers = await api.auth()
        after = (await api.client.get("/api/v1/bot/status", headers=headers)).json()
        assert after["status"] == "running" and after["started_at"] == before["started_at"]
        assert next(s for s in after["strategies"] if s["name"] == "sma_cross")["signals_today"] == 2
        listed = (await api.client.get("/api/v1/strategies", headers=headers)).json()["strategies"]
        assert next(s for s in listed if s["name"] == "sma_cross")["performance"]["total_signals"] == 2
