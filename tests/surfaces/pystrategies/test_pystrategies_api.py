"""Python Strategies over real HTTP with real processes: upload, run, logs, stop, edit, env, isolation."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid

import psutil
import sqlalchemy as sa

from quantdesk.services.pystrategies import PyStrategyConfig

TICKER = (
    "import os, time\n"
    "print('INFO: Strategy initialized')\n"
    "print('ENV', os.environ.get('SYMBOL'), os.environ.get('API_KEY'), os.environ.get('QD_SERVER_ONLY'))\n"
    "while True:\n"
    "    print('tick')\n"
    "    time.sleep(0.2)\n"
)
STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*)$", re.M)


async def upload(api, h, code: str = TICKER, name: str = "EMA Crossover", filename: str = "ema.py"):
    return await api.client.post("/python/upload", files={"file": (filename, code.encode(), "text/x-python")},
                                 data={"name": name}, headers=h)


async def uploaded(api, h, code: str = TICKER, name: str = "EMA Crossover") -> str:
    r = await upload(api, h, code, name)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["message"] == "Strategy uploaded successfully"
    uuid.UUID(body["strategy_id"])
    return body["strategy_id"]


async def eventually(fn, timeout: float = 30.0):
    """Poll ``fn`` (async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def strategy_status(api, h, sid: str) -> dict:
    r = await api.client.get("/python/status", headers=h)
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["strategies"] if s["id"] == sid)


async def log_json(api, h, sid: str) -> dict:
    r = await api.client.get(f"/python/logs/{sid}", params={"format": "json", "latest": 1}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error_code"] == code and body["message"], body
    return body


async def test_strategy_lifecycle_upload_start_logs_stop_delete(api, settings):
    h = await api.auth()
    sid = await uploaded(api, h)
    status = (await api.client.get("/python/status", headers=h)).json()
    assert (status["running"], status["total"], status["scheduler_running"]) == (0, 1, True)
    assert re.fullmatch(r"\d\d:\d\d:\d\d IST", status["current_ist_time"]) and status["platform"] == "linux"
    item = status["strategies"][0]
    assert (item["id"], item["name"], item["is_running"], item["is_scheduled"], item["pid"]) == (
        sid, "EMA Crossover", False, False, None)
    page = await api.client.get("/python", headers={**h, "Accept": "text/html"})
    assert page.status_code == 200 and "EMA Crossover" in page.text and sid in page.text

    r = await api.client.post(f"/python/start/{sid}", headers=h)
    assert r.status_code == 200, r.text
    match = re.fullmatch(r"Strategy started with PID (\d+) at \d\d:\d\d:\d\d IST", r.json()["message"])
    assert match and r.json()["success"] is True
    pid = int(match.group(1))
    proc = psutil.Process(pid)
    assert any(arg.endswith(f"{sid}.py") for arg in proc.cmdline())
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session and process group
    assert pid != os.getpid() and proc.ppid() == os.getpid()
    assert (settings.data_dir / "strategies" / "1" / f"{sid}.py").is_file()

    error(await api.client.post(f"/python/start/{sid}", headers=h), 409, "STRATEGY_RUNNING")
    error(await api.client.post(f"/python/delete/{sid}", headers=h), 409, "STRATEGY_RUNNING")
    error(await api.client.post(f"/python/save/{sid}", json={"content": "print(1)\n"}, headers=h), 400,
          "STRATEGY_RUNNING")
    edit = await api.client.get(f"/python/edit/{sid}", headers={**h, "Accept": "text/html"})
    assert edit.status_code == 200 and "read-only" in edit.text and "Strategy initialized" in edit.text

    logs = await eventually(lambda: _log_with(api, h, sid, "tick"))
    content = logs["content"]
    assert re.search(r"^=== Strategy Started at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST ===$", content, re.M)
    assert "=== Platform: linux ===" in content and "[Strategy Output]" in content
    outputs = STAMPED.findall(content)
    assert outputs[0] == "INFO: Strategy initialized" and "tick" in outputs
    running = await strategy_status(api, h, sid)
    assert running["is_running"] is True and running["pid"] == pid and running["status"] == "running"
    html = await api.client.get(f"/python/logs/{sid}", params={"latest": 1}, headers={**h, "Accept": "text/html"})
    assert html.status_code == 200 and "INFO: Strategy initialized" in html.text

    r = await api.client.post(f"/python/stop/{sid}", headers=h)
    assert r.status_code == 200, r.text
    assert re.fullmatch(r"Strategy stopped at \d\d:\d\d:\d\d IST", r.json()["message"])
    await eventually(lambda: _async(group_gone(pid)), timeout=10)
    stopped = await strategy_status(api, h, sid)
    assert (stopped["status"], stopped["is_running"], stopped["pid"]) == ("stopped", False, None)
    assert stopped["exit_reason"].startswith("stopped by user") and stopped["last_stopped"].endswith("+05:30")
    error(await api.client.post(f"/python/stop/{sid}", headers=h), 400, "STRATEGY_NOT_RUNNING")
    assert "Strategy Stopped at" in (await log_json(api, h, sid))["content"]

    r = await api.client.post(f"/python/delete/{sid}", headers=h)
    assert r.status_code == 200 and r.json() == {"success": True, "message": "Strategy deleted successfully"}
    assert (await api.client.get("/python/status", headers=h)).json()["total"] == 0
    assert not (settings.data_dir / "strategies" / "1" / f"{sid}.py").exists()
    error(await api.client.post(f"/python/start/{sid}", headers=h), 404, "STRATEGY_NOT_FOUND")


async def _async(value):
    return value


async def _log_with(api, h, sid, text):
    body = await log_json(api, h, sid)
    return body if text in STAMPED.findall(body["content"]) else None


async def test_stop_kills_group_of_script_ignoring_sigterm(api):
    api.app.state.pystrategies.config = PyStrategyConfig(stop_grace_s=0.5)
    h = await api.auth()
    code = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print('ready')\n"
            "time.sleep(600)\n")
    sid = await uploaded(api, h, code)
    pid = (await api.client.post(f"/python/start/{sid}", headers=h)).json()["pid"]
    await eventually(lambda: _log_with(api, h, sid, "ready"))
    r = await api.client.post(f"/python/stop/{sid}", headers=h)
    assert r.status_code == 200, r.text
    await eventually(lambda: _async(group_gone(pid)), timeout=10)
    assert "killed after the grace period" in (await strategy_status(api, h, sid))["exit_reason"]


async def test_script_exiting_by_itself_is_detected(api):
    h = await api.auth()
    sid = await uploaded(api, h, "print('working')\nraise SystemExit(3)\n", name="Quitter")
    assert (await api.client.post(f"/python/start/{sid}", headers=h)).status_code == 200
    done = await eventually(lambda: _finished(api, h, sid))
    assert (done["status"], done["exit_code"], done["pid"], done["exit_reason"]) == (
        "error", 3, None, "exited with code 3")
    content = (await log_json(api, h, sid))["content"]
    assert "working" in STAMPED.findall(content) and "(exit code 3) ===" in content
    error(await api.client.post(f"/python/stop/{sid}", headers=h), 400, "STRATEGY_NOT_RUNNING")

    clean = await uploaded(api, h, "print('done')\n", name="Clean")
    await api.client.post(f"/python/start/{clean}", headers=h)
    done = await eventually(lambda: _finished(api, h, clean))
    assert (done["status"], done["exit_code"]) == ("stopped", 0)


async def _finished(api, h, sid):
    item = await strategy_status(api, h, sid)
    return item if not item["is_running"] and item["last_stopped"] else None


async def test_memory_hog_is_stopped_by_its_limit(api):
    h = await api.auth()
    sid = await uploaded(api, h, "print('allocating')\nblob = bytearray(8 * 1024 ** 3)\n", name="Hog")
    assert (await api.client.post(f"/python/start/{sid}", headers=h)).status_code == 200
    done = await eventually(lambda: _finished(api, h, sid))
    assert done["status"] == "error" and done["exit_code"] == 1
    assert done["exit_reason"].startswith("memory limit of 1024 MiB exceeded")
    content = (await log_json(api, h, sid))["content"]
    assert "MemoryError" in content and "memory limit of 1024 MiB exceeded" in content


async def test_env_vars_secure_values_hidden_encrypted_and_seen_by_process(api, settings, monkeypatch):
    monkeypatch.setenv("QD_SERVER_ONLY", "server-secret")
    h = await api.auth()
    sid = await uploaded(api, h)
    body = {"regular_vars": {"DEBUG": "true", "SYMBOL": "RELIANCE"}, "secure_vars": {"API_KEY": "s3cr3t-value"}}
    r = await api.client.post(f"/python/env/{sid}", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "message": "Environment variables saved successfully",
                        "regular_count": 2, "secure_count": 1}
    r = await api.client.get(f"/python/env/{sid}", headers=h)
    assert r.json() == {"success": True, "regular_vars": {"DEBUG": "true", "SYMBOL": "RELIANCE"},
                        "secure_vars": ["API_KEY"]}
    assert "s3cr3t-value" not in r.text
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM py_strategies WHERE id = :id"), {"id": sid}).mappings().one()
    engine.dispose()
    assert "s3cr3t-value" not in repr(dict(row)) and "enc:v1:" in str(row["env_secure"])

    # null keeps the stored secret
    r = await api.client.post(f"/python/env/{sid}", json={"secure_vars": {"API_KEY": None}}, headers=h)
    assert r.status_code == 200 and r.json()["secure_count"] == 1 and r.json()["regular_count"] == 2

    await api.client.post(f"/python/start/{sid}", headers=h)
    await eventually(lambda: _log_with(api, h, sid, "ENV RELIANCE s3cr3t-value None"))
    error(await api.client.post(f"/python/env/{sid}", json=body, headers=h), 400, "STRATEGY_RUNNING")
    await api.client.post(f"/python/stop/{sid}", headers=h)

    for bad in ({"regular_vars": {"1BAD": "x"}}, {"regular_vars": ["A"]}, {"secure_vars": {"A": {"x": 1}}},
                {"regular_vars": {"A": "1"}, "secure_vars": {"A": "2"}}):
        error(await api.client.post(f"/python/env/{sid}", json=bad, headers=h), 400, "VALIDATION_ERROR")


async def test_edit_save_export_and_clear_logs(api):
    h = await api.auth()
    sid = await uploaded(api, h, "print('v1')\n")
    page = await api.client.get(f"/python/edit/{sid}", headers={**h, "Accept": "text/html"})
    assert page.status_code == 200 and "print(&#39;v1&#39;)" in page.text and "read-only" not in page.text
    r = await api.client.post(f"/python/save/{sid}", json={"content": "print('v2')\n"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Strategy saved successfully"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST", r.json()["timestamp"])
    body = error(await api.client.post(f"/python/save/{sid}", json={"content": "def f(:\n"}, headers=h), 400,
                 "INVALID_FILE")
    assert "line 1" in body["message"]
    r = await api.client.get(f"/python/export/{sid}", headers=h)
    assert r.status_code == 200 and r.content == b"print('v2')\n"
    assert r.headers["content-type"].startswith("text/x-python")
    assert r.headers["content-disposition"].startswith("attachment") and "ema.py" in r.headers["content-disposition"]

    for _ in range(2):
        await api.client.post(f"/python/start/{sid}", headers=h)
        await eventually(lambda: _finished(api, h, sid))
    assert len((await log_json(api, h, sid))["files"]) == 2
    r = await api.client.post(f"/python/logs/{sid}/clear", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["cleared_count"] == 2 and body["total_size_mb"] == 0.0
    assert body["message"] == "Cleared 2 log files (0.00 MB)"
    assert (await log_json(api, h, sid))["files"] == []


async def test_bad_uploads_are_refused(api):
    h = await api.auth()
    error(await upload(api, h, filename="notes.txt"), 415, "INVALID_FILE")
    body = error(await upload(api, h, code="import time\ndef broken(:\n    pass\n"), 400, "INVALID_FILE")
    assert "line 2" in body["message"]
    r = await api.client.post("/python/upload", files={"file": ("latin.py", b"print('\xff')\n")},
                              data={"name": "Latin"}, headers=h)
    assert "UTF-8" in error(r, 400, "INVALID_FILE")["message"]
    big = b"#" * (10 * 1024 * 1024 + 1)
    r = await api.client.post("/python/upload", files={"file": ("big.py", big)}, data={"name": "Big"}, headers=h)
    assert r.status_code == 413 and r.json()["success"] is False, r.text
    huge = b"#" * (11 * 1024 * 1024)
    r = await api.client.post("/python/upload", files={"file": ("huge.py", huge)}, data={"name": "Huge"}, headers=h)
    assert r.status_code == 413 and r.json()["success"] is False
    r = await api.client.post("/python/upload", files={"file": ("a.py", b"print(1)\n")}, headers=h)
    assert error(r, 400, "VALIDATION_ERROR")["message"].startswith("name is required")
    r = await api.client.post("/python/upload", data={"name": "No file"}, headers=h)
    error(r, 400, "INVALID_FILE")
    assert (await api.client.get("/python/status", headers=h)).json()["total"] == 0


async def test_requests_without_credentials_get_401(api):
    sid = str(uuid.uuid4())
    for method, path in (("POST", "/python/upload"), ("GET", "/python/status"), ("POST", f"/python/start/{sid}"),
                         ("GET", f"/python/env/{sid}"), ("GET", f"/python/export/{sid}")):
        r = await api.client.request(method, path)
        error(r, 401, "UNAUTHORIZED")
    r = await api.client.get("/python", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/python")


async def test_other_users_strategies_are_invisible(api):
    admin = await api.auth()
    sid = await uploaded(api, admin)
    bob = await api.make_user("bob")
    for method, path in (("POST", f"/python/start/{sid}"), ("POST", f"/python/stop/{sid}"),
                         ("POST", f"/python/delete/{sid}"), ("GET", f"/python/env/{sid}"),
                         ("GET", f"/python/export/{sid}"), ("GET", f"/python/logs/{sid}"),
                         ("GET", f"/python/edit/{sid}"), ("POST", f"/python/logs/{sid}/clear"),
                         ("POST", f"/python/unschedule/{sid}")):
        error(await api.client.request(method, path, headers=bob), 404, "STRATEGY_NOT_FOUND")
    error(await api.client.post(f"/python/save/{sid}", json={"content": "x = 1\n"}, headers=bob), 404,
          "STRATEGY_NOT_FOUND")
    error(await api.client.post("/python/start/not-a-uuid", headers=admin), 404, "STRATEGY_NOT_FOUND")
    assert (await api.client.get("/python/status", headers=bob)).json()["total"] == 0
    assert (await api.client.get("/python/status", headers=admin)).json()["total"] == 1
