"""Server secrets on disk are private to the server's uid (hosted strategies run as other uids)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy as sa

from kit.app import api_for, make_settings
from quantdesk.adapters.db.engine import make_engine
from quantdesk.adapters.keyfile import load_or_create_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_key_and_database_files_are_0600_after_a_fresh_start(tmp_path):
    old = os.umask(0o022)
    try:
        settings = make_settings(tmp_path)
        async for api in api_for(settings):
            r = await api.client.get("/api/health")
            assert r.status_code < 500
            db = tmp_path / "qd.db"
            assert _mode(settings.secret_key_file) == 0o600
            assert _mode(db) == 0o600
            sidecars = [db.with_name("qd.db-wal"), db.with_name("qd.db-shm")]
            assert any(p.exists() for p in sidecars)  # WAL mode: SQLite made them with the file's mode
            for path in sidecars:
                if path.exists():
                    assert _mode(path) == 0o600, path
    finally:
        os.umask(old)


def test_existing_loose_key_and_database_are_tightened(tmp_path):
    key = tmp_path / "secret.key"
    key.write_bytes(b"k" * 64)
    key.chmod(0o644)
    assert load_or_create_secret(key) == b"k" * 64
    assert _mode(key) == 0o600
    db = tmp_path / "old.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    assert _mode(db) == 0o600
    for path in (db.with_name("old.db-wal"), db.with_name("old.db-shm")):
        assert not path.exists() or _mode(path) == 0o600
    engine.dispose()
