"""Shared fixtures: real settings, real databases (SQLite temp files, PostgreSQL), the real app."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from quantdesk.app import build_runtime, create_app
from quantdesk.settings import Settings

ADMIN_PASSWORD = "admin-pass-123"
PG_ADMIN_URL = os.environ.get("QD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


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


def make_settings(tmp: Path, **overrides) -> Settings:
    values = dict(
        database_url=f"sqlite:///{tmp}/qd.db",
        data_dir=tmp / "data",
        secret_key_file=tmp / "secret.key",
        admin_user="admin",
        admin_password=ADMIN_PASSWORD,
        rate_limit_read=0,
        rate_limit_write=0,
        rate_limit_backtest=0,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


class Api:
    """An httpx client on the ASGI app plus helpers for credentials."""

    def __init__(self, client: httpx.AsyncClient, app):
        self.client = client
        self.app = app

    async def token(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        r = await self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    async def auth(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username, password)}"}

    async def make_user(self, username: str, password: str = "user-pass-123", role: str = "user") -> dict[str, str]:
        admin = await self.auth()
        r = await self.client.post("/api/v1/auth/users", json={"username": username, "password": password, "role": role},
                                   headers=admin)
        assert r.status_code == 201, r.text
        return await self.auth(username, password)


async def _api_for(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings, build_runtime(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, app)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for a in _api_for(settings):
        yield a


@pytest.fixture(params=["sqlite", "postgres"])
async def api_any_db(request, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on SQLite and on PostgreSQL: persistence-sensitive tests run on both."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        # each test gets clean tables: drop everything alembic made in this session's database
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with eng.begin() as c:
            c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        eng.dispose()
        settings = make_settings(tmp_path, database_url=url)
    else:
        settings = make_settings(tmp_path)
    async for a in _api_for(settings):
        yield a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

