"""Market data over HTTP on a fresh install: ML and FluxScan shapes, sessions, determinism, 4xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
async def auth(api):
    return await api.auth()


async def test_ml_market_data_returns_valid_repeatable_bars(api, auth):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=3)
    params = {"symbol": "ETH_USDT", "timeframe": "1h", "start": start.isoformat(), "end": end.isoformat()}
    r = await api.client.get("/api/market/data", params=params, headers=auth)
    assert r.status_code == 200, r.text
    bars = r.json()
    assert len(bars) == 72
    assert bars[0]["timestamp"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    for b in bars:
        assert b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"]
        assert b["volume"] >= 0
    again = await api.client.get("/api/market/data", params={**params, "symbol": "ETHUSDT"}, headers=auth)
    assert again.json() == bars


async def test_crypto_daily_bars_are_exact_aggregates_of_hourly(api, auth):
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=5)
    q = {"symbol": "BTC/USDT", "start": start.isoformat(), "end": end.isoformat()}
    daily = (await api.client.get("/api/market/data", params={**q, "timeframe": "1d"}, headers=auth)).json()
    hourly = (await api.client.get("/api/market/data", params={**q, "timeframe": "1h"}, headers=auth)).json()
    assert len(daily) == 5 and len(hourly) == 120
    h = pd.DataFrame(hourly)
    h["day"] = h["timestamp"].str[:10]
    for d in daily:
        day = h[h["day"] == d["timestamp"][:10]]
        assert d["open"] == day["open"].iloc[0] and d["close"] == day["close"].iloc[-1]
        assert d["high"] == day["high"].max() and d["low"] == day["low"].min()
        assert d["volume"] == pytest.approx(day["volume"].sum(), rel=0, abs=1e-6)


async def test_fluxscan_history_daily_lookback_on_fresh_install(api, auth):
    params = {"symbol": "RELIANCE", "exchange": "NSE", "interval": "D", "lookback": 100}
    r = await api.client.get("/api/data/history", params=params, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["symbol"] == "RELIANCE" and body["exchange"] == "NSE" and body["interval"] == "D"
    assert len(body["data"]) == 100
    days = [datetime.strptime(b["timestamp"], "%Y-%m-%d") for b in body["data"]]
    assert all(d.weekday() < 5 for d in days) and days == sorted(set(days))
    assert (await api.client.get("/api/data/history", params=params, headers=auth)).json() == body


async def test_nse_intraday_bars_fall_inside_sessions(api, auth):
    params = {"symbol": "TCS", "exchange": "NSE", "interval": "5m", "lookback": 300}
    body = (await api.client.get("/api/data/history", params=params, headers=auth)).json()
    assert len(body["data"]) == 300
    for b in body["data"]:
        local = datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).astimezone(IST)
        assert local.weekday() < 5
        assert (9, 15) <= (local.hour, local.minute) < (15, 30), local


async def test_symbol_search_and_validate(api, auth):
    r = await api.client.get("/api/symbols/search", params={"q": "RELI", "exchange": "NSE"}, headers=auth)
    assert r.status_code == 200
    assert {"symbol": "RELIANCE", "name": r.json()[0]["name"], "exchange": "NSE"} in r.json()
    assert "Reliance" in r.json()[0]["name"]
    ok = await api.client.post("/api/symbols/validate", json={"symbol": "INFY", "exchange": "NSE"}, headers=auth)
    assert ok.json() == {"valid": True}
    bad = await api.client.post("/api/symbols/validate", json={"symbol": "NOPE123", "exchange": "NSE"}, headers=auth)
    assert bad.json() == {"valid": False}


async def test_market_symbols_lists_crypto_in_ml_spelling(api, auth):
    r = await api.client.get("/api/market/symbols", params={"asset_type": "crypto"}, headers=auth)
    body = r.json()
    assert body["asset_type"] == "crypto" and "BTC_USDT" in body["symbols"] and "ETH_USDT" in body["symbols"]
    r = await api.client.get("/api/market/symbols", params={"asset_type": "bonds"}, headers=auth)
    assert r.status_code == 422 and "asset_type" in r.json()["detail"]


@pytest.mark.parametrize(
    "path,params,status,check",
    [
        ("/api/market/data", {"symbol": "NOPE_USDT", "timeframe": "1h"}, 404, lambda b: "NOPE" in b["detail"]),
        ("/api/market/data", {"symbol": "BTC_USDT", "timeframe": "7m"}, 400, lambda b: "timeframe" in b["detail"]),
        ("/api/market/data", {"symbol": "BTC_USDT", "timeframe": "1h", "start": "2025-02-01", "end": "2025-01-01"},
         400, lambda b: "start" in b["detail"]),
        ("/api/market/data", {"symbol": "BTC_USDT", "timeframe": "1h", "start": "yesterday"}, 400,
         lambda b: "start" in b["detail"]),
        ("/api/market/data", {"symbol": "BTC_USDT", "timeframe": "1m", "start": "2000-01-01"}, 400,
         lambda b: "narrow" in b["detail"]),
        ("/api/data/history", {"symbol": "RELIANCE", "interval": "D", "lookback": "many"}, 400,
         lambda b: "lookback" in b["errors"]),
        ("/api/data/history", {"symbol": "ZZZZ", "interval": "D"}, 404, lambda b: b["error"] == "Resource not found"),
    ],
)
async def test_bad_market_requests_are_clear_4xx(api, auth, path, params, status, check):
    r = await api.client.get(path, params=params, headers=auth)
    assert r.status_code == status, r.text
    assert check(r.json()), r.text


async def test_import_reports_rejections_and_serves_the_accepted_bars(api, auth, tmp_path):
    csv = (
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01,100,110,95,105,1000\n"
        "2024-01-02,105,104,100,103,1000\n"  # high below open: rejected
        "2024-01-03,103,108,101,107,-5\n"  # negative volume: rejected
        "2024-01-04,107,112,106,111,900\n"
    )
    files = {"file": ("mystock.csv", csv.encode(), "text/csv")}
    r = await api.client.post("/api/data/import", files=files, data={"symbol": "MYSTOCK", "exchange": "NSE",
                                                                     "timeframe": "1d"}, headers=auth)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["accepted"] == 2 and len(report["rejected"]) == 2
    hist = await api.client.get("/api/data/history", params={"symbol": "MYSTOCK", "exchange": "NSE", "interval": "D",
                                                            "lookback": 10}, headers=auth)
    assert [b["timestamp"] for b in hist.json()["data"]] == ["2024-01-01", "2024-01-04"]


async def test_malformed_import_is_400_and_caches_nothing(api, auth):
    files = {"file": ("bad.csv", b"when,price\n2024-01-01,3\n", "text/csv")}
    r = await api.client.post("/api/data/import", files=files, data={"symbol": "BADCO", "exchange": "NSE"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "Validation failed"
    r = await api.client.post("/api/symbols/validate", json={"symbol": "BADCO", "exchange": "NSE"}, headers=auth)
    assert r.json() == {"valid": False}


async def test_cache_clear(api, auth):
    await api.client.get("/api/data/history", params={"symbol": "INFY", "interval": "D", "lookback": 5}, headers=auth)
    assert any((api.app.state.settings.data_dir / "bars").rglob("*.parquet"))
    r = await api.client.post("/api/cache/clear", headers=auth)
    assert r.json() == {"message": "Cache cleared successfully"}
    assert not any((api.app.state.settings.data_dir / "bars").rglob("*.parquet"))
