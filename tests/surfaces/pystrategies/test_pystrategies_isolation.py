"""Over real HTTP: a hosted strategy runs as its owner's uid and cannot read server secrets or other users' files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.app import api_for, make_settings
from quantdesk.adapters.processes.isolation import UID_BASE

from .test_pystrategies_api import STAMPED, eventually, log_json, strategy_status, uploaded

PROBE = '''
import os
def probe(label, action):
    try:
        action()
        print(label, "ALLOWED", flush=True)
    except Exception as exc:
        print(label, type(exc).__name__, flush=True)
for label, path in PATHS:
    probe(label, (lambda p: (lambda: os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(1)))(path))
print("UID", os.getuid(), flush=True)
probe("setuid0", lambda: os.setuid(0))
probe("signal-server", lambda: os.kill(os.getppid(), 0))
open("own.txt", "w").write("mine")
print("WROTE", open(os.path.join(os.environ["HOME"], "own.txt")).read(), flush=True)
print("DONE", flush=True)
'''


@pytest.fixture
async def open_api() -> AsyncIterator:
    """The app with its key, database and data dir in a directory every uid can traverse (tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="qd-isolation-"))
    base.chmod(0o755)
    settings = make_settings(base)
    try:
        async for api in api_for(settings):
            yield api, settings
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _done(api, h, sid: str) -> list[str] | None:
    lines = STAMPED.findall((await log_json(api, h, sid))["content"])
    return lines if "DONE" in lines or any("Error" in line for line in lines[-1:]) else None


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
async def test_hosted_strategy_cannot_read_secrets_or_another_users_files(open_api):
    api, settings = open_api
    bob = await api.make_user("bob")
    bob_sid = await uploaded(api, bob, "open('note.txt', 'w').write('bob')\nprint('DONE')\n", name="Bob's")
    assert (await api.client.post(f"/python/start/{bob_sid}", headers=bob)).status_code == 200
    await eventually(lambda: _done(api, bob, bob_sid))
    strategies = settings.data_dir / "strategies"
    bob_dir = next(p for p in strategies.iterdir() if (p / f"{bob_sid}.py").exists())
    bob_log = next((bob_dir / bob_sid / "logs").glob("*.log"))
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    targets = [("key", settings.secret_key_file), ("db", db), ("db-wal", db.with_name(db.name + "-wal")),
               ("db-shm", db.with_name(db.name + "-shm")), ("bob-script", bob_dir / f"{bob_sid}.py"),
               ("bob-work", bob_dir / bob_sid / "work"), ("bob-note", bob_dir / bob_sid / "work" / "note.txt"),
               ("bob-log", bob_log), ("bob-dir", bob_dir), ("strategies", strategies)]
    for _, path in targets:
        assert path.exists(), path

    h = await api.auth()
    sid = await uploaded(api, h, f"PATHS = {[(label, str(path)) for label, path in targets]!r}\n" + PROBE)
    r = await api.client.post(f"/python/start/{sid}", headers=h)
    assert r.status_code == 200, r.text
    lines = await eventually(lambda: _done(api, h, sid))
    for label, _ in targets:
        assert f"{label} PermissionError" in lines, lines
    assert f"UID {UID_BASE + 1}" in lines
    assert "setuid0 PermissionError" in lines and "signal-server PermissionError" in lines
    assert "WROTE mine" in lines
    item = await strategy_status(api, h, sid)
    assert item["isolation"]["uid"] == UID_BASE + 1 and item["isolation"]["dropped_privileges"] is True
