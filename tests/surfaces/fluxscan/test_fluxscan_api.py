"""FluxScan over HTTP: scanners, watchlists, scans, results, export, settings, stats, auth."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

CODE_BAD = "import os\nsignal = 'BUY'\n"
CODE_ALWAYS = """\
close = df['close'].to_numpy()
signal = 'BUY' if close[-1] >= close[-2] else 'SELL'
metrics = {'last': float(close[-1]), 'bars': float(len(close))}
"""


async def _wait_scan(api, headers, scan_id, timeout_s=120.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        r = await api.client.get(f"/scan/api/scan/status/{scan_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("completed", "failed", "cancelled"):
            return r.json()
        assert loop.time() < deadline, f"scan {scan_id} still {r.json()}"
        await asyncio.sleep(0.05)


async def _scanner(api, headers, code=CODE_ALWAYS, name="Always") -> int:
    r = await api.client.post("/api/scanners", json={"name": name, "code": code, "category": "test"}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _watchlist(api, headers, symbols, name="WL") -> int:
    r = await api.client.post("/api/watchlists", json={"name": name, "symbols": symbols}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_scanners_new_user_sees_four_examples_and_nifty50(api):
    h = await api.make_user("alice")
    scanners = (await api.client.get("/api/scanners", headers=h)).json()
    assert len(scanners) == 4
    assert {"id", "name", "description", "category", "is_active", "parameters", "created_at",
            "updated_at"} <= set(scanners[0])
    watchlists = (await api.client.get("/api/watchlists", headers=h)).json()
    assert [w["name"] for w in watchlists] == ["NIFTY 50"]
    assert watchlists[0]["symbol_count"] == 50 == len(watchlists[0]["symbols"])


async def test_scanner_create_with_forbidden_import_400_names_code(api):
    h = await api.auth()
    r = await api.client.post("/api/scanners", json={"name": "Bad", "code": CODE_BAD}, headers=h)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "Validation failed"
    assert "os" in body["errors"]["code"] and "line 1" in body["errors"]["code"]
    r = await api.client.post("/api/scanners", json={"code": CODE_ALWAYS}, headers=h)
    assert r.status_code == 400 and "name" in r.json()["errors"]


async def test_scanner_crud_and_details_counts(api):
    h = await api.auth()
    r = await api.client.post("/api/scanners", json={"name": "RSI", "code": CODE_ALWAYS, "parameters": {"p": 1}},
                              headers=h)
    assert r.status_code == 201 and r.json()["status"] == "created" and isinstance(r.json()["id"], int)
    sid = r.json()["id"]
    d = (await api.client.get(f"/api/scanners/{sid}", headers=h)).json()
    assert d["code"] == CODE_ALWAYS and d["total_scans"] == 0 and d["active_schedules"] == 0
    r = await api.client.put(f"/api/scanners/{sid}", json={"name": "RSI 2", "is_active": False}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "RSI 2" and r.json()["is_active"] is False
    r = await api.client.put(f"/api/scanners/{sid}", json={"code": CODE_BAD}, headers=h)
    assert r.status_code == 400 and "code" in r.json()["errors"]
    r = await api.client.delete(f"/api/scanners/{sid}", headers=h)
    assert r.json() == {"message": "Scanner deleted successfully"}
    r = await api.client.get(f"/api/scanners/{sid}", headers=h)
    assert r.status_code == 404 and r.json()["resource"] == "scanner" and r.json()["id"] == sid


async def test_validate_reports_errors_and_signal_warning(api):
    h = await api.auth()
    r = await api.client.post("/api/scanners/validate", json={"code": "x = 1\n"}, headers=h)
    assert r.json() == {"is_valid": True, "valid": True, "errors": [],
                        "warnings": ["Scanner should set 'signal' variable"]}
    r = await api.client.post("/api/scanners/validate", json={"code": "open('/etc/passwd')"}, headers=h)
    assert r.status_code == 200 and r.json()["is_valid"] is False and "open" in r.json()["errors"][0]


async def test_other_users_scanner_watchlist_scan_are_404(api):
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    sid = await _scanner(api, alice)
    wid = await _watchlist(api, alice, ["TCS"])
    for path in (f"/api/scanners/{sid}", f"/api/watchlists/{wid}"):
        r = await api.client.get(path, headers=bob)
        assert r.status_code == 404, path
    r = await api.client.delete(f"/api/scanners/{sid}", headers=bob)
    assert r.status_code == 404
    r = await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": wid}, headers=bob)
    assert r.status_code == 404
    scan = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": wid},
                                  headers=alice)).json()
    r = await api.client.get(f"/scan/api/scan/status/{scan['scan_id']}", headers=bob)
    assert r.status_code == 404 and r.json()["resource"] == "scan"
    await _wait_scan(api, alice, scan["scan_id"])


async def test_watchlist_crud_and_bad_symbols_named(api):
    h = await api.auth()
    r = await api.client.post("/api/watchlists", json={"name": "Mine", "symbols": ["reliance", "TCS", "NOPE1"]},
                              headers=h)
    assert r.status_code == 400 and "NOPE1" in r.json()["errors"]["symbols"]
    wid = await _watchlist(api, h, ["reliance", "TCS"])
    r = await api.client.put(f"/api/watchlists/{wid}", json={"name": "Renamed", "symbols": ["INFY", "TCS", "HDFCBANK"]},
                             headers=h)
    assert r.status_code == 200 and r.json()["symbols"] == ["INFY", "TCS", "HDFCBANK"] and r.json()["name"] == "Renamed"
    r = await api.client.delete(f"/api/watchlists/{wid}", headers=h)
    assert r.status_code == 200
    assert (await api.client.get(f"/api/watchlists/{wid}", headers=h)).status_code == 404


async def test_watchlist_import_names_every_bad_symbol(api):
    h = await api.auth()
    r = await api.client.post("/api/watchlists/import",
                              json={"name": "Imp", "csv_content": "RELIANCE\nFOO\nTCS\nBARX\n", "exchange": "NSE"},
                              headers=h)
    assert r.status_code == 400
    msg = r.json()["errors"]["csv_content"]
    assert "FOO" in msg and "line 2" in msg and "BARX" in msg and "line 4" in msg
    r = await api.client.post("/api/watchlists/import",
                              json={"name": "Imp", "csv_content": "symbol,weight\nRELIANCE,1\nTCS,2\nINFY,3"},
                              headers=h)
    assert r.status_code == 201 and isinstance(r.json()["id"], int)
    assert r.json()["symbols"] == ["RELIANCE", "TCS", "INFY"]


async def test_scan_runs_counts_signals_and_results_paginate(api):
    h = await api.auth()
    sid = await _scanner(api, h)
    symbols = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "ITC", "SBIN", "LT"]
    wid = await _watchlist(api, h, symbols)
    r = await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": wid,
                                                       "parameters": {"lookback_days": 100}}, headers=h)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["status"] == "running" and started["total_symbols"] == 7 and isinstance(started["scan_id"], int)
    final = await _wait_scan(api, h, started["scan_id"])
    assert final["status"] == "completed" and final["progress"] == 100
    assert final["symbols_scanned"] == 7 and final["signals_found"] == 7
    # alternate spelling of the id
    assert (await api.client.get(f"/scan/api/scan/status/scan_{started['scan_id']}", headers=h)).status_code == 200

    page = (await api.client.get("/api/results", params={"page": 1, "per_page": 3}, headers=h)).json()
    assert page["total"] == 7 and page["page"] == 1 and page["per_page"] == 3 and page["total_pages"] == 3
    assert page["has_next"] is True and page["has_prev"] is False and len(page["results"]) == 3
    item = page["results"][0]
    assert item["scanner_name"] == "Always" and item["signal"] in ("BUY", "SELL")
    assert item["metrics"]["bars"] == 100.0 and item["price"] == item["metrics"]["last"]
    last = (await api.client.get("/api/results", params={"page": 3, "per_page": 3}, headers=h)).json()
    assert len(last["results"]) == 1 and last["has_next"] is False and last["has_prev"] is True
    buys = (await api.client.get("/api/results", params={"signal": "BUY", "scanner_id": sid}, headers=h)).json()
    assert all(x["signal"] == "BUY" for x in buys["results"])
    one = (await api.client.get("/api/results", params={"symbol": "tcs"}, headers=h)).json()
    assert [x["symbol"] for x in one["results"]] == ["TCS"]
    r = await api.client.get("/api/results", params={"page": "x"}, headers=h)
    assert r.status_code == 400

    details = (await api.client.get(f"/api/scanners/{sid}", headers=h)).json()
    assert details["total_scans"] == 1
    stats = (await api.client.get("/api/stats", headers=h)).json()
    assert stats["scans"]["completed"] == 1 and stats["results"]["total"] == 7 and stats["results"]["today"] == 7
    assert stats["scanners"]["total"] == 5 and stats["watchlists"]["total"] == 2


async def test_export_csv_has_symbol_and_signal_columns_and_json(api):
    h = await api.auth()
    sid = await _scanner(api, h)
    wid = await _watchlist(api, h, ["RELIANCE", "TCS", "INFY"])
    scan = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": wid}, headers=h)).json()
    await _wait_scan(api, h, scan["scan_id"])
    r = await api.client.post("/api/results/export", json={"format": "csv", "scanner_id": sid}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {"symbol", "signal", "scanner_name", "price", "last", "bars"} <= set(rows[0])
    assert sorted(x["symbol"] for x in rows) == ["INFY", "RELIANCE", "TCS"]
    r = await api.client.post("/api/results/export", json={"format": "json", "start_date": "2000-01-01",
                                                            "end_date": "2000-01-31"}, headers=h)
    assert r.status_code == 200 and r.json() == []
    r = await api.client.post("/api/results/export", json={"format": "json", "scan_id": scan["scan_id"]}, headers=h)
    assert len(r.json()) == 3
    r = await api.client.post("/api/results/export", json={"format": "xml"}, headers=h)
    assert r.status_code == 400
    r = await api.client.post("/api/results/export", json={"start_date": "2024-02-01", "end_date": "2024-01-01"},
                              headers=h)
    assert r.status_code == 400 and "start_date" in r.json()["errors"]


async def test_scan_cancel_stops_and_refuses_twice(api):
    h = await api.auth()
    slow = "total = 0\nfor i in range(3_000_000):\n    total += i\nsignal = None\n"
    sid = await _scanner(api, h, code=slow, name="Slow")
    watchlists = (await api.client.get("/api/watchlists", headers=h)).json()
    nifty = next(w for w in watchlists if w["name"] == "NIFTY 50")["id"]
    scan = (await api.client.post("/scan/api/scan", json={"scanner_id": sid, "watchlist_id": nifty}, headers=h)).json()
    r = await api.client.post(f"/scan/api/scan/cancel/{scan['scan_id']}", headers=h)
    assert r.status_code == 200 and r.json()["message"] == "Scan cancelled successfully"
    final = await _wait_scan(api, h, scan["scan_id"], timeout_s=30)
    assert final["status"] == "cancelled" and final["symbols_scanned"] < 50
    r = await api.client.post(f"/scan/api/scan/cancel/{scan['scan_id']}", headers=h)
    assert r.status_code == 409


async def test_scanner_test_endpoint_reports_execution_time(api):
    h = await api.auth()
    sid = await _scanner(api, h)
    r = await api.client.post(f"/api/scanners/{sid}/test", json={"symbols": ["RELIANCE", "TCS"]}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["execution_time"] > 0
    assert [x["symbol"] for x in body["results"]] == ["RELIANCE", "TCS"]
    assert all(x["signal"] in ("BUY", "SELL") and "last" in x["metrics"] for x in body["results"])
    r = await api.client.post(f"/api/scanners/{sid}/test", json={"symbols": ["XXNOPE"]}, headers=h)
    assert r.status_code == 400 and "XXNOPE" in r.json()["errors"]["symbols"]


async def test_settings_defaults_update_and_bad_values_400(api):
    h = await api.auth()
    s = (await api.client.get("/api/settings", headers=h)).json()
    assert s["market_open_time"] == "09:15" and s["timezone"] == "Asia/Kolkata" and s["default_exchange"] == "NSE"
    r = await api.client.put("/api/settings", json={"market_open_time": "09:30", "enable_notifications": True},
                             headers=h)
    assert r.status_code == 200 and r.json()["market_open_time"] == "09:30" and r.json()["enable_notifications"]
    for bad, field in (({"market_open_time": "9.30"}, "market_open_time"),
                       ({"timezone": "Mars/Olympus"}, "timezone"),
                       ({"default_exchange": "NASDAQ"}, "default_exchange"),
                       ({"market_close_time": "09:00"}, "market_close_time"),
                       ({"no_such_setting": 1}, "no_such_setting")):
        r = await api.client.put("/api/settings", json=bad, headers=h)
        assert r.status_code == 400, (bad, r.text)
        assert field in r.json()["errors"], r.json()
    assert (await api.client.get("/api/settings", headers=h)).json()["market_open_time"] == "09:30"


async def test_openalgo_test_not_configured_200_false(api):
    h = await api.auth()
    r = await api.client.get("/api/settings/openalgo/test", headers=h)
    assert r.status_code == 200
    assert r.json()["connected"] is False and "not configured" in r.json()["message"]


async def test_openalgo_test_unreachable_server_says_why(api):
    h = await api.auth()
    r = await api.client.put("/api/settings", json={"openalgo_url": "http://127.0.0.1:9", "openalgo_api_key": "k"},
                             headers=h)
    assert r.status_code == 200 and "openalgo_api_key" not in r.json() and r.json()["openalgo_api_key_set"] is True
    r = await api.client.get("/api/settings/openalgo/test", headers=h)
    assert r.status_code == 200 and r.json()["connected"] is False and r.json()["message"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/scanners"), ("POST", "/api/scanners/validate"), ("GET", "/api/watchlists"),
    ("POST", "/scan/api/scan"), ("GET", "/scan/api/scan/status/1"), ("GET", "/api/results"),
    ("POST", "/api/results/export"), ("GET", "/api/schedules"), ("GET", "/api/settings"),
    ("GET", "/api/stats"), ("GET", "/api/settings/openalgo/test"),
])
async def test_each_router_without_credentials_401(api, method, path):
    r = await api.client.request(method, path, json={})
    assert r.status_code == 401
    assert "error" in r.json()


async def test_openalgo_key_is_encrypted_at_rest_and_still_authenticates(api):
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from fakes.openalgo import FakeOpenAlgo

    h = await api.auth()
    secret = "oa-live-key-7d1c"
    with FakeOpenAlgo(datetime.now(UTC), api_key=secret) as fake:
        r = await api.client.put("/api/settings", json={"openalgo_url": fake.url, "openalgo_api_key": secret},
                                 headers=h)
        assert r.status_code == 200 and secret not in r.text
        engine = sa.create_engine(api.app.state.settings.database_url)
        with engine.connect() as c:
            stored = " ".join(str(v) for (v,) in c.execute(sa.text("SELECT value FROM app_settings")))
        engine.dispose()
        assert "openalgo_url" in stored and secret not in stored and "enc:v1:" in stored
        r = await api.client.get("/api/settings/openalgo/test", headers=h)
        assert r.json()["connected"] is True, r.json()
