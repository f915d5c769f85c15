"""Shared fixtures: real settings, real databases (SQLite temp files, PostgreSQL), the real app."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kit.app import ADMIN_PASSWORD, PG_ADMIN_URL, REDIS_URL, Api, api_for, free_port, make_settings
from quantdesk.app import build_runtime, create_app
from quantdesk.settings import Settings

__all__ = ["ADMIN_PASSWORD", "Api", "api_for", "free_port", "make_settings"]


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable")
    name = f"qd_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip("Redis not reachable")
    return REDIS_URL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for a in api_for(settings):
        yield a


def _fresh_db_settings(request, tmp_path: Path, **overrides) -> Settings:
    """Settings on a fresh SQLite file, or on the session's PostgreSQL database emptied."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        # each test gets clean tables: drop everything alembic made in this session's database
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with eng.begin() as c:
            c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        eng.dispose()
        overrides["database_url"] = url
    return make_settings(tmp_path, **overrides)


@pytest.fixture(params=["sqlite", "postgres"])
async def api_any_db(request, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on SQLite and on PostgreSQL: persistence-sensitive tests run on both."""
    async for a in api_for(_fresh_db_settings(request, tmp_path)):
        yield a


@pytest.fixture(params=["sqlite", "postgres"])
def db_settings(request, tmp_path: Path) -> Settings:
    """Settings on a fresh database (SQLite, or PostgreSQL emptied) without a live feed: for restart tests."""
    return _fresh_db_settings(request, tmp_path, live_feed_speed=0)


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_engine(request, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated engine on SQLite and on the session's PostgreSQL (tests make their own rows)."""
    from quantdesk.adapters.db.engine import make_engine, migrate

    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/t.db"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """quantdesk under a real uvicorn on a free port, in a thread."""
    import uvicorn

    port = free_port()
    app = create_app(settings, build_runtime(settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)

