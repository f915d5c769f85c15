"""A real uvicorn serving quantdesk for the Scalper tests, plus HTTP/WebSocket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn

from kit.app import ADMIN_PASSWORD, free_port, make_settings
from quantdesk.app import Runtime, build_runtime, create_app
from quantdesk.settings import Settings

_names = itertools.count(1)


@dataclass
class Server:
    url: str
    settings: Settings
    runtime: Runtime

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def new_user(self) -> tuple[int, dict[str, str]]:
        """A fresh user (its own paper account); returns (user id, bearer headers)."""
        name = f"trader{next(_names)}_{time.monotonic_ns() % 100000}"
        admin = {"Authorization": f"Bearer {self.login()}"}
        r = httpx.post(f"{self.url}/api/v1/auth/users", headers=admin,
                       json={"username": name, "password": "trader-pass-1", "role": "user"})
        assert r.status_code == 201, r.text
        return r.json()["id"], {"Authorization": f"Bearer {self.login(name, 'trader-pass-1')}"}

    def api_key(self, headers: dict[str, str]) -> str:
        r = httpx.post(f"{self.url}/api/v1/auth/api-keys", headers=headers, json={"name": "sdk"})
        assert r.status_code == 201, r.text
        return r.json()["api_key"]


@contextlib.contextmanager
def serve(settings: Settings, runtime: Runtime | None = None) -> Iterator[Server]:
    """quantdesk on a free port under a real uvicorn (in a thread) for the block's duration."""
    runtime = runtime or build_runtime(settings)
    port = free_port()
    app = create_app(settings, runtime)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, runtime)
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def scalper(tmp_path_factory) -> Iterator[Server]:
    """One server per test module; the live feed is off so prices are the last closed 1m bar's close."""
    tmp: Path = tmp_path_factory.mktemp("scalper")
    with serve(make_settings(tmp, live_feed_speed=0)) as server:
        yield server


def dec(response: httpx.Response):
    """The JSON body with every number as an exact Decimal (as the server rendered it)."""
    return json.loads(response.content, parse_float=Decimal, parse_int=Decimal)


async def ws_recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout), parse_float=Decimal, parse_int=Decimal)


async def ws_until(ws, predicate, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await ws_recv(ws, max(0.05, deadline - time.monotonic()))
        if predicate(message):
            return message


async def ws_all(ws, *predicates, timeout: float = 5.0) -> list[dict]:
    """The first message matching each predicate, in any arrival order (channels are not ordered together)."""
    found: list[dict | None] = [None] * len(predicates)
    deadline = time.monotonic() + timeout
    while any(f is None for f in found):
        message = await ws_recv(ws, max(0.05, deadline - time.monotonic()))
        for i, predicate in enumerate(predicates):
            if found[i] is None and predicate(message):
                found[i] = message
    return found  # type: ignore[return-value]


async def ws_subscribe(ws, token: str, channels: list[str]) -> None:
    await ws.send(json.dumps({"type": "auth", "token": token}))
    assert (await ws_until(ws, lambda m: m["type"] == "auth"))["status"] == "authenticated"
    await ws.send(json.dumps({"type": "subscribe", "channels": channels}))
    await ws_until(ws, lambda m: m["type"] == "subscribed")
