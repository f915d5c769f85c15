"""Strategy schedules (IST) persisted across restarts; what a restart does to running strategies."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from tests.conftest import make_settings
from tests.surfaces.pystrategies.test_pystrategies_api import TICKER, error, group_gone, uploaded

from quantdesk.app import build_runtime, create_app
from quantdesk.services.pystrategies import in_window, next_start_after, next_stop_after

IST = ZoneInfo("Asia/Kolkata")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _not_today() -> list[str]:
    """Every weekday except today's and yesterday's in IST, so no window is open while the test runs."""
    today = datetime.now(IST).weekday()
    return [d for i, d in enumerate(DAYS) if i not in (today, (today - 1) % 7)]


class _App:
    """The app on ``settings`` with its lifespan, behind an httpx client, logged in as admin."""

    def __init__(self, settings):
        self.settings = settings

    async def __aenter__(self):
        self.app = create_app(self.settings, build_runtime(self.settings))
        self._life = self.app.router.lifespan_context(self.app)
        await self._life.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")
        r = await self.client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-123"})
        self.h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self

    async def __aexit__(self, *exc):
        await self.client.aclose()
        await self._life.__aexit__(*exc)


def test_next_runs_use_ist_days_and_skip_holidays_for_starts():
    monday = date(2025, 3, 10)
    before = datetime(2025, 3, 10, 8, 0, tzinfo=IST).astimezone(UTC)
    start, stop = time(9, 15), time(15, 30)
    assert next_start_after(before, start, ["mon", "wed"], frozenset()) == datetime(2025, 3, 10, 9, 15, tzinfo=IST)
    assert next_start_after(before, start, ["mon", "wed"], frozenset({monday})) == datetime(
        2025, 3, 12, 9, 15, tzinfo=IST)
    # a stop still happens on a holiday (a manually started strategy is stopped on time)
    assert next_stop_after(before, start, stop, ["mon"]) == datetime(2025, 3, 10, 15, 30, tzinfo=IST)
    # a stop time before the start time stops the next day
    assert next_stop_after(before, time(22, 0), time(2, 0), ["mon"]) == datetime(2025, 3, 11, 2, 0, tzinfo=IST)
    inside = datetime(2025, 3, 10, 10, 0, tzinfo=IST).astimezone(UTC)
    assert in_window(inside, start, stop, ["mon"], frozenset())
    assert not in_window(inside, start, stop, ["mon"], frozenset({monday}))
    assert not in_window(inside, start, stop, ["tue"], frozenset())
    assert in_window(datetime(2025, 3, 11, 1, 0, tzinfo=IST), time(22, 0), time(2, 0), ["mon"], frozenset())


async def test_schedule_validation_and_unschedule(api):
    h = await api.auth()
    sid = await uploaded(api, h)
    for body in ({"start_time": "25:00", "days": ["mon"]}, {"start_time": "9.15", "days": ["mon"]},
                 {"start_time": "09:15", "days": []}, {"start_time": "09:15"},
                 {"start_time": "09:15", "stop_time": "15:61", "days": ["mon"]},
                 {"start_time": "09:15", "days": ["funday"]}, {"days": ["mon"]}):
        error(await api.client.post(f"/python/schedule/{sid}", json=body, headers=h), 400, "SCHEDULE_ERROR")
    r = await api.client.post(f"/python/schedule/{sid}", json={"start_time": "09:15", "stop_time": "15:30",
                                                               "days": ["Mon", "friday", "wed"]}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Strategy scheduled successfully"
    item = next(s for s in (await api.client.get("/python/status", headers=h)).json()["strategies"])
    assert (item["is_scheduled"], item["schedule_start"], item["schedule_stop"], item["schedule_days"]) == (
        True, "09:15", "15:30", ["mon", "wed", "fri"])
    local = datetime.fromisoformat(item["next_start"])
    assert local.utcoffset().total_seconds() == 5.5 * 3600 and (local.hour, local.minute) == (9, 15)
    assert local.strftime("%a").lower() in ("mon", "wed", "fri")
    pending = api.app.state.pystrategies.scheduler.pending()
    assert pending[f"pystrategy-start-{sid}"] == local
    assert f"pystrategy-stop-{sid}" in pending

    assert (await api.client.post(f"/python/start/{sid}", headers=h)).status_code == 200
    error(await api.client.post(f"/python/schedule/{sid}", json={"start_time": "10:00", "days": ["mon"]},
                                headers=h), 400, "STRATEGY_RUNNING")
    await api.client.post(f"/python/stop/{sid}", headers=h)

    r = await api.client.post(f"/python/unschedule/{sid}", headers=h)
    assert r.status_code == 200 and r.json() == {"success": True, "message": "Schedule removed successfully"}
    assert not any(k.endswith(sid) for k in api.app.state.pystrategies.scheduler.pending())
    item = (await api.client.get("/python/status", headers=h)).json()["strategies"][0]
    assert item["is_scheduled"] is False and item["next_start"] is None


async def test_schedule_survives_restart_and_shutdown_stops_processes(tmp_path):
    settings = make_settings(tmp_path)
    async with _App(settings) as one:
        scheduled = await uploaded(one, one.h, name="Scheduled")
        running = await uploaded(one, one.h, TICKER, name="Running")
        days = _not_today()
        r = await one.client.post(f"/python/schedule/{scheduled}", json={"start_time": "09:15", "stop_time": "15:30",
                                                                          "days": days}, headers=one.h)
        assert r.status_code == 200, r.text
        before = one.app.state.pystrategies.scheduler.pending()
        pid = (await one.client.post(f"/python/start/{running}", headers=one.h)).json()["pid"]
    # the server stopped: so did its strategy processes, recorded as stopped by the shutdown
    assert group_gone(pid)

    async with _App(settings) as two:
        status = (await two.client.get("/python/status", headers=two.h)).json()
        by_name = {s["name"]: s for s in status["strategies"]}
        assert status["running"] == 0 and status["scheduler_running"] is True
        assert by_name["Running"]["status"] == "stopped" and by_name["Running"]["exit_reason"] == "server shutdown"
        sched = by_name["Scheduled"]
        assert (sched["is_scheduled"], sched["schedule_start"], sched["schedule_days"]) == (True, "09:15", days)
        pending = two.app.state.pystrategies.scheduler.pending()
        assert pending[f"pystrategy-start-{scheduled}"] == before[f"pystrategy-start-{scheduled}"]
        assert pending[f"pystrategy-stop-{scheduled}"] == before[f"pystrategy-stop-{scheduled}"]
        assert datetime.fromisoformat(sched["next_start"]) == pending[f"pystrategy-start-{scheduled}"]


async def test_restart_marks_strategy_of_a_vanished_process_stopped(tmp_path):
    settings = make_settings(tmp_path)
    async with _App(settings) as one:
        sid = await uploaded(one, one.h)
    engine = sa.create_engine(settings.database_url)
    with engine.begin() as conn:  # as if the server had died with the strategy recorded as running
        conn.execute(sa.text("UPDATE py_strategies SET status = 'running', pid = 4194000 WHERE id = :id"),
                     {"id": sid})
    engine.dispose()
    async with _App(settings) as two:
        item = (await two.client.get("/python/status", headers=two.h)).json()["strategies"][0]
        assert (item["status"], item["pid"], item["is_running"]) == ("stopped", None, False)
        assert "server restarted" in item["exit_reason"]
        assert (await two.client.post(f"/python/start/{sid}", headers=two.h)).status_code == 200
        assert (await two.client.post(f"/python/stop/{sid}", headers=two.h)).status_code == 200


async def test_scheduled_start_and_stop_fire(api):
    h = await api.auth()
    sid = await uploaded(api, h)
    await api.client.post(f"/python/schedule/{sid}", json={"start_time": "09:15", "stop_time": "15:30",
                                                           "days": list(DAYS)}, headers=h)
    svc = api.app.state.pystrategies
    svc.fire_start(sid)  # what the scheduler calls at 09:15 IST
    item = (await api.client.get("/python/status", headers=h)).json()["strategies"][0]
    assert item["is_running"] is True and item["pid"]
    svc.fire_stop(sid)
    item = (await api.client.get("/python/status", headers=h)).json()["strategies"][0]
    assert item["is_running"] is False and item["exit_reason"] == "stopped by schedule"
    assert f"pystrategy-start-{sid}" in svc.scheduler.pending()
