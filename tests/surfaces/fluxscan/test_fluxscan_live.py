"""FluxScan against a real uvicorn: the reference's Python client, and Socket.IO scan progress."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import requests
import socketio
from tests.conftest import ADMIN_PASSWORD


# The reference's SDK example (1-fluxscan-scanner-api.md, "SDK Examples / Python"), with only the
# API-key header added.
class FluxScanAPI:
    def __init__(self, base_url, api_key):
        self.base_url = base_url
        self.headers = {"X-API-Key": api_key}

    def list_scanners(self):
        return requests.get(f"{self.base_url}/api/scanners", headers=self.headers).json()

    def run_scan(self, scanner_id, watchlist_id):
        return requests.post(
            f"{self.base_url}/scan/api/scan",
            json={
                "scanner_id": scanner_id,
                "watchlist_id": watchlist_id
            },
            headers=self.headers,
        ).json()


def _api_key(base: str) -> str:
    token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    r = httpx.post(f"{base}/api/v1/auth/api-keys", json={"name": "fluxscan"},
                   headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 201, r.text
    return r.json()["api_key"]


def _token(base: str) -> str:
    r = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    return r.json()["access_token"]


def test_reference_client_lists_scanners_and_runs_scan_end_to_end(live_server):
    key = _api_key(live_server)
    api = FluxScanAPI(live_server, key)
    scanners = api.list_scanners()
    assert {s["name"] for s in scanners} >= {"MACD Crossover", "RSI Oversold"}
    macd = next(s for s in scanners if s["name"] == "MACD Crossover")
    watchlists = requests.get(f"{live_server}/api/watchlists", headers=api.headers).json()
    nifty = next(w for w in watchlists if w["name"] == "NIFTY 50")
    started = api.run_scan(macd["id"], nifty["id"])
    assert started["status"] == "running" and started["total_symbols"] == 50
    deadline = time.monotonic() + 120
    while True:
        status = requests.get(f"{live_server}/scan/api/scan/status/{started['scan_id']}", headers=api.headers).json()
        if status["status"] != "running":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["status"] == "completed" and status["symbols_scanned"] == 50 and status["progress"] == 100
    results = requests.get(f"{live_server}/api/results", params={"per_page": 100}, headers=api.headers).json()
    assert results["total"] == 50
    assert sum(1 for r in results["results"] if r["signal"]) == status["signals_found"]
    assert all({"macd", "histogram", "price"} <= set(r["metrics"]) for r in results["results"] if not r["error"])


async def test_socketio_receives_progress_with_symbol_and_completion_for_50_symbols(live_server):
    token = await asyncio.to_thread(_token, live_server)
    h = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live_server, headers=h) as http:
        scanners = (await http.get("/api/scanners")).json()
        watchlists = (await http.get("/api/watchlists")).json()
        slow_code = ("total = 0\nfor i in range(200_000):\n    total += i\n"
                     "signal = 'BUY' if df['close'].iloc[-1] > df['close'].iloc[-2] else None\n")
        r = await http.post("/api/scanners", json={"name": "Slowish", "code": slow_code})
        scanner_id = r.json()["id"]
        nifty = next(w for w in watchlists if w["name"] == "NIFTY 50")
        assert scanners and nifty["symbol_count"] == 50

        client = socketio.AsyncClient(reconnection=False)
        progress: list[dict] = []
        done = asyncio.get_running_loop().create_future()
        client.on("scan_progress", lambda data: progress.append(data))
        client.on("scan_complete", lambda data: done.done() or done.set_result(data))
        await client.connect(live_server, auth={"token": token}, socketio_path="socket.io",
                             transports=["websocket"], wait_timeout=10)
        try:
            scan = (await http.post("/scan/api/scan", json={"scanner_id": scanner_id,
                                                             "watchlist_id": nifty["id"]})).json()
            ack = await client.call("subscribe_scan", {"scan_id": scan["scan_id"]}, timeout=10)
            assert ack == {"subscribed": True, "scan_id": scan["scan_id"]}
            complete = await asyncio.wait_for(done, 120)
        finally:
            await client.disconnect()
    assert complete["scan_id"] == scan["scan_id"] and complete["status"] == "completed"
    assert complete["total_scanned"] == 50
    final = (await asyncio.to_thread(requests.get, f"{live_server}/scan/api/scan/status/{scan['scan_id']}",
                                     headers=h)).json()
    assert complete["signals_found"] == final["signals_found"]
    assert progress and all(p["scan_id"] == scan["scan_id"] for p in progress)
    with_symbol = [p for p in progress if p.get("symbol")]
    assert with_symbol and all(p["symbol"] in nifty["symbols"] for p in with_symbol)
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)


async def test_socketio_refuses_missing_or_bad_token_and_foreign_scan(live_server):
    for auth in (None, {"token": "not-a-token"}):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(live_server, auth=auth, transports=["websocket"], wait_timeout=10)
    # bob may not follow admin's scan
    token = await asyncio.to_thread(_token, live_server)
    admin = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live_server) as http:
        r = await http.post("/api/v1/auth/users", json={"username": "bob", "password": "bob-pass-123", "role": "user"},
                            headers=admin)
        assert r.status_code == 201
        bob = (await http.post("/api/v1/auth/login", json={"username": "bob", "password": "bob-pass-123"})).json()
        scanners = (await http.get("/api/scanners", headers=admin)).json()
        watchlists = (await http.get("/api/watchlists", headers=admin)).json()
        scan = (await http.post("/scan/api/scan", json={"scanner_id": scanners[0]["id"],
                                                         "watchlist_id": watchlists[0]["id"]}, headers=admin)).json()
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(live_server, auth={"token": bob["access_token"]}, transports=["websocket"], wait_timeout=10)
    try:
        ack = await client.call("subscribe_scan", {"scan_id": scan["scan_id"]}, timeout=10)
        assert "error" in ack and "not found" in ack["error"]
    finally:
        await client.disconnect()
