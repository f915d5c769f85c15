"""Builders shared by the tests: settings on temp dirs, the app behind an httpx client, free ports."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from quantdesk.app import build_runtime, create_app
from quantdesk.settings import Settings

ADMIN_PASSWORD = "admin-pass-123"
PG_ADMIN_URL = os.environ.get("QD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def make_settings(tmp: Path, **overrides) -> Settings:
    """Settings on a temp dir: SQLite, known admin password, rate limits off unless overridden."""
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


async def api_for(settings: Settings) -> AsyncIterator[Api]:
    """The app with its lifespan running, behind an httpx client."""
    app = create_app(settings, build_runtime(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, app)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_status(api: Api, headers: dict, path: str, statuses: tuple[str, ...], timeout_s: float = 60.0) -> dict:
    """GET ``path`` until its ``status`` is one of ``statuses``; return the body (fail after ``timeout_s``)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        body = (await api.client.get(path, headers=headers)).json()
        if body.get("status") in statuses:
            return body
        assert time.monotonic() < deadline, f"{path} still {body.get('status')}"
        await asyncio.sleep(0.05)
