"""The dashboard in a browser session: the CSRF meta tag, cookie writes need X-CSRFToken; both databases."""

from __future__ import annotations

import re

from tests.surfaces.pystrategies.test_pystrategies_api import error, uploaded


async def test_dashboard_session_csrf_upload_and_start(api):
    r = await api.client.post("/login", data={"username": "admin", "password": "admin-pass-123", "next": "/python"})
    assert r.status_code == 303 and r.headers["location"] == "/python"
    page = await api.client.get("/python", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Python Strategies" in page.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)
    files = {"file": ("s.py", b"print('hello')\n")}
    r = await api.client.post("/python/upload", files=files, data={"name": "From browser"})
    error(r, 403, "CSRF_FAILED")
    assert (await api.client.get("/python/status")).json()["total"] == 0
    r = await api.client.post("/python/upload", files=files, data={"name": "From browser"},
                              headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.text
    page = await api.client.get("/python", headers={"Accept": "text/html"})
    assert "From browser" in page.text and r.json()["strategy_id"] in page.text


async def test_strategy_state_round_trips_on_both_databases(api_any_db):
    api = api_any_db
    h = await api.auth()
    sid = await uploaded(api, h)
    r = await api.client.post(f"/python/env/{sid}", json={"regular_vars": {"A": "1"}, "secure_vars": {"K": "v"}},
                              headers=h)
    assert r.status_code == 200, r.text
    r = await api.client.post(f"/python/schedule/{sid}", json={"start_time": "09:15", "days": ["mon", "tue"]},
                              headers=h)
    assert r.status_code == 200, r.text
    assert (await api.client.get(f"/python/env/{sid}", headers=h)).json()["secure_vars"] == ["K"]
    item = (await api.client.get("/python/status", headers=h)).json()["strategies"][0]
    assert (item["schedule_days"], item["schedule_stop"], item["last_modified"][-6:]) == (["mon", "tue"], None,
                                                                                         "+05:30")
