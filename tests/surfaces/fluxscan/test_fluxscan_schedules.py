"""FluxScan schedules: aware next runs inside NSE hours, daily IST times, persistence across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
from tests.conftest import make_settings

from quantdesk.adapters.feeds.calendars import nse_session_rules
from quantdesk.app import build_runtime, create_app
from quantdesk.services.fluxscan_ports import ScheduleType
from quantdesk.services.fluxscan_schedules import next_run_after

IST = ZoneInfo("Asia/Kolkata")


async def _ids(api, h):
    scanners = (await api.client.get("/api/scanners", headers=h)).json()
    watchlists = (await api.client.get("/api/watchlists", headers=h)).json()
    return scanners[0]["id"], watchlists[0]["id"]


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None and value.utcoffset() is not None
    return value


async def test_interval_schedule_market_hours_only_next_run_is_aware_and_in_session(api):
    h = await api.auth()
    scanner_id, watchlist_id = await _ids(api, h)
    r = await api.client.post("/api/schedules", json={"scanner_id": scanner_id, "watchlist_id": watchlist_id,
                                                      "schedule_type": "interval", "interval_minutes": 30,
                                                      "market_hours_only": True}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body["id"], int) and body["schedule_type"] == "interval" and body["market_hours_only"] is True
    next_run = _aware(body["next_run"])
    assert next_run > datetime.now(UTC)
    assert nse_session_rules().is_open(next_run)
    listed = (await api.client.get("/api/schedules", headers=h)).json()
    assert listed[0]["scanner_name"] and listed[0]["watchlist_name"] == "NIFTY 50"
    assert listed[0]["interval_minutes"] == 30 and listed[0]["is_active"] is True
    details = (await api.client.get(f"/api/scanners/{scanner_id}", headers=h)).json()
    assert details["active_schedules"] == 1


async def test_daily_schedule_runs_at_ist_time_and_toggles(api):
    h = await api.auth()
    scanner_id, watchlist_id = await _ids(api, h)
    r = await api.client.post("/api/schedules", json={"scanner_id": scanner_id, "watchlist_id": watchlist_id,
                                                      "schedule_type": "daily", "run_time": "09:30:00"}, headers=h)
    assert r.status_code == 201, r.text
    sched = r.json()
    local = _aware(sched["next_run"]).astimezone(IST)
    assert (local.hour, local.minute) == (9, 30) and sched["run_time"] == "09:30"
    r = await api.client.post(f"/api/schedules/{sched['id']}/toggle", json={"is_active": False}, headers=h)
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["next_run"] is None
    r = await api.client.post(f"/api/schedules/{sched['id']}/toggle", json={"is_active": True}, headers=h)
    assert r.json()["is_active"] is True and r.json()["next_run"]
    r = await api.client.delete(f"/api/schedules/{sched['id']}", headers=h)
    assert r.status_code == 200
    assert (await api.client.get(f"/api/schedules/{sched['id']}", headers=h)).status_code == 404


async def test_schedule_bad_input_400(api):
    h = await api.auth()
    scanner_id, watchlist_id = await _ids(api, h)
    base = {"scanner_id": scanner_id, "watchlist_id": watchlist_id}
    for body, field in (({"schedule_type": "daily", "run_time": "25:99"}, "run_time"),
                        ({"schedule_type": "daily"}, "run_time"),
                        ({"schedule_type": "interval"}, "interval_minutes"),
                        ({"schedule_type": "weekly"}, "schedule_type")):
        r = await api.client.post("/api/schedules", json={**base, **body}, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["errors"], r.json()


def test_next_run_interval_outside_hours_waits_for_next_open():
    rules = nse_session_rules()
    # a Saturday evening in IST: the next run is the next session's open (09:15 IST)
    saturday = datetime(2025, 3, 8, 20, 0, tzinfo=IST).astimezone(UTC)
    nxt = next_run_after(ScheduleType.INTERVAL, saturday, rules, interval_minutes=30, market_hours_only=True)
    local = nxt.astimezone(IST)
    assert local.time() == time(9, 15) and local.weekday() == 0 and nxt.tzinfo is not None
    inside = datetime(2025, 3, 10, 10, 0, tzinfo=IST).astimezone(UTC)
    assert next_run_after(ScheduleType.INTERVAL, inside, rules, interval_minutes=30,
                          market_hours_only=True) == inside + timedelta(minutes=30)
    assert next_run_after(ScheduleType.INTERVAL, saturday, rules, interval_minutes=30) == saturday + timedelta(minutes=30)


async def test_schedule_survives_restart(tmp_path):
    settings = make_settings(tmp_path)
    created = None
    for round_ in range(2):
        app = create_app(settings, build_runtime(settings))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-123"})
                h = {"Authorization": f"Bearer {r.json()['access_token']}"}
                if round_ == 0:
                    scanners = (await client.get("/api/scanners", headers=h)).json()
                    watchlists = (await client.get("/api/watchlists", headers=h)).json()
                    r = await client.post("/api/schedules", json={
                        "scanner_id": scanners[0]["id"], "watchlist_id": watchlists[0]["id"],
                        "schedule_type": "interval", "interval_minutes": 60}, headers=h)
                    created = r.json()
                else:
                    listed = (await client.get("/api/schedules", headers=h)).json()
                    assert [s["id"] for s in listed] == [created["id"]]
                    assert listed[0]["next_run"] == created["next_run"]
                    # re-registered with the scheduler of the new app
                    pending = app.state.fluxscan_schedules.scheduler.pending()
                    assert _aware(listed[0]["next_run"]) == pending[f"fluxscan-schedule-{created['id']}"]
