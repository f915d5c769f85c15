"""The app with the live feed off (bars come only from the tests), and helpers to drive a breakout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kit.app import Api, api_for, make_settings
from quantdesk.services.topics import user_topic


@pytest.fixture
async def bapi(tmp_path) -> AsyncIterator[Api]:
    async for api in api_for(make_settings(tmp_path, live_feed_speed=0)):
        yield api


async def user_id(api: Api, headers: dict[str, str]) -> int:
    return (await api.client.get("/api/v1/auth/me", headers=headers)).json()["id"]


async def btc_only(api: Api, headers: dict[str, str], **sections) -> None:
    """Make breakout_v1 trade BTC/USDT alone (and apply any other sections)."""
    body = {"scanner_config": {"symbols": ["BTC/USDT"], "max_candidates": 1}, **sections}
    r = await api.client.put("/api/presets/breakout_v1", headers=headers, json=body)
    assert r.status_code == 200, r.text


async def sim_price(api: Api) -> Decimal:
    trading = api.app.state.trading
    return await trading.prices.current(trading.instrument("BTCUSDT"))


def breakout_bars(price: Decimal, *, n_range: int = 25, up: bool = True) -> list[dict]:
    """``n_range`` quiet bars in a range just below (above) ``price``, then one heavy bar closing at ``price``."""
    p = float(price)
    base = p * (0.99 if up else 1.01)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=n_range + 5)
    bars = []
    for i in range(n_range):
        close = base + (0.001 * p if i % 2 else -0.001 * p)
        bars.append(_bar(start + timedelta(minutes=i), base, close + 0.002 * p, close - 0.002 * p, close, 10))
    last = start + timedelta(minutes=n_range)
    bars.append(_bar(last, base, max(base, p) + 0.001 * p, min(base, p) - 0.001 * p, p, 60))
    return bars


def _bar(at: datetime, open_: float, high: float, low: float, close: float, volume: float) -> dict:
    r = lambda x: round(x, 1)  # noqa: E731  (BTCUSDT ticks are 0.1)
    return {"type": "bar", "symbol": "BTCUSDT", "timeframe": "1m",
            "data": {"timestamp": at.isoformat().replace("+00:00", "Z"), "open": r(open_), "high": r(high),
                     "low": r(low), "close": r(close), "volume": volume}}


async def publish_until(api: Api, uid: int, bars: list[dict], until, timeout: float = 20) -> list[dict]:
    """Publish ``bars`` as the live feed would; return the user's bus messages up to the one ``until`` accepts."""
    bus = api.app.state.bus
    seen: list[dict] = []
    with bus.subscribe(user_topic(uid, "*"), lossless=True) as private:
        for bar in bars:
            await bus.publish("bars:BTCUSDT", bar)
        while not seen or not until(seen[-1]):
            seen.append((await private.get(timeout=timeout))[1])
    return seen


def engine_state(message: dict, state: str) -> bool:
    return message.get("type") == "ENGINE_UPDATE" and message["data"]["state"] == state
