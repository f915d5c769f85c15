"""Imported symbols survive a restart: a second app on the same database and data dir serves them."""

from __future__ import annotations

from kit.app import api_for, make_settings

CSV = (
    "timestamp,open,high,low,close,volume\n"
    "2024-01-01,100,110,95,105,1000\n"
    "2024-01-02,105,112,104,111,900\n"
    "2024-01-03,111,113,108,109,800\n"
)
HISTORY = {"symbol": "MYSTOCK", "exchange": "NSE", "interval": "D", "lookback": 10}


async def test_imported_symbol_history_survives_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    async for api in api_for(settings):
        auth = await api.auth()
        files = {"file": ("mystock.csv", CSV.encode(), "text/csv")}
        r = await api.client.post("/api/data/import", files=files,
                                  data={"symbol": "MYSTOCK", "exchange": "NSE", "timeframe": "1d"}, headers=auth)
        assert r.status_code == 201, r.text
        before = await api.client.get("/api/data/history", params=HISTORY, headers=auth)
        assert before.status_code == 200, before.text
    async for api in api_for(make_settings(tmp_path)):  # a new app: same database, same data dir
        auth = await api.auth()
        after = await api.client.get("/api/data/history", params=HISTORY, headers=auth)
        assert after.status_code == 200, after.text
        assert after.json() == before.json()
        assert [b["timestamp"] for b in after.json()["data"]] == ["2024-01-01", "2024-01-02", "2024-01-03"]
        valid = await api.client.post("/api/symbols/validate", json={"symbol": "MYSTOCK", "exchange": "NSE"},
                                      headers=auth)
        assert valid.json() == {"valid": True}


async def test_unknown_symbol_is_still_404_after_a_restart(tmp_path):
    for _ in range(2):
        async for api in api_for(make_settings(tmp_path)):
            r = await api.client.get("/api/data/history", params={**HISTORY, "symbol": "NEVERIMPORTED"},
                                     headers=await api.auth())
            assert r.status_code == 404, r.text
