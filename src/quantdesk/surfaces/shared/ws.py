"""``/ws``: one WebSocket for two protocols (contract point 5).

After auth a client receives the Breakout event stream (channel ``engine``: ``HEARTBEAT``,
``ENGINE_UPDATE``, ...) until it sends its first Scalper ``subscribe``; from then on it receives
only the channels it subscribed to. Market data is dropped oldest-first for a slow client;
order, position, account and signal updates are never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from quantdesk.core.errors import AuthenticationError, InvalidInputError
from quantdesk.core.instruments import parse_symbol
from quantdesk.services.accounts import Principal
from quantdesk.services.topics import PRIVATE_CHANNELS, market_topic, user_topic
from quantdesk.surfaces.shared.auth import authenticate_push
from quantdesk.surfaces.shared.responses import dumps

log = logging.getLogger("quantdesk.ws")
router = APIRouter()

LOSSY_QUEUE = 256
AUTH_TIMEOUT_S = 10.0


def channel_topic(principal: Principal, channel: str) -> str:
    """Map a client's channel name to a bus topic, or raise InvalidInputError."""
    if channel.startswith("market:"):
        inst = parse_symbol(channel.split(":", 1)[1], field="channel")
        return market_topic(inst.key)
    if channel in PRIVATE_CHANNELS:
        return user_topic(principal.user_id, channel)
    if channel == "engine":
        return "engine"
    raise InvalidInputError(
        f"unknown channel {channel!r}; use market:SYMBOL, account, orders, positions, signals or engine",
        field="channels",
    )


class WsSettings:
    heartbeat_s: float = 30.0
    messages_per_minute: int = 100


class Client:
    """One connected socket: its subscriptions, its inbound budget and its outbound pump."""

    def __init__(self, ws: WebSocket, principal: Principal, bus, settings: WsSettings):
        self.ws = ws
        self.principal = principal
        self.bus = bus
        self.settings = settings
        self.channels: set[str] = set()
        self.subs: dict[str, Any] = {}  # channel -> Subscription
        self.scalper_mode = False
        self._window_start = time.monotonic()
        self._window_count = 0
        self._wake = asyncio.Event()

    def allow_message(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count <= self.settings.messages_per_minute

    def retry_after(self) -> int:
        return max(1, int(60 - (time.monotonic() - self._window_start)))

    def subscribe(self, channel: str) -> None:
        if channel in self.subs:
            return
        topic = channel_topic(self.principal, channel)
        lossy = channel.startswith("market:")
        self.subs[channel] = self.bus.subscribe(topic, maxsize=LOSSY_QUEUE, lossless=not lossy)
        self.channels.add(channel)
        self._wake.set()

    def unsubscribe(self, channel: str) -> None:
        sub = self.subs.pop(channel, None)
        if sub is not None:
            sub.close()
        self.channels.discard(channel)

    def close(self) -> None:
        for ch in list(self.subs):
            self.unsubscribe(ch)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_text(dumps(message).decode())

    async def pump(self) -> None:
        """Forward bus messages to the socket; lossless channels first, then market data."""
        while True:
            sent = False
            for sub in sorted(self.subs.values(), key=lambda s: not s.lossless):
                item = sub.get_nowait()
                while item is not None:
                    await self.send(item[1])
                    sent = True
                    item = sub.get_nowait() if sub.lossless else None
            if not sent:
                waiters = [asyncio.ensure_future(s.get()) for s in self.subs.values()]
                wake = asyncio.ensure_future(self._wake.wait())
                try:
                    done, pending = await asyncio.wait([*waiters, wake], return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:  # the socket closed: leave no waiter behind
                    for task in (*waiters, wake):
                        task.cancel()
                    raise
                # a waiter may finish between wait() returning and cancel(): keep its message (lossless)
                late = [task for task in pending if not task.cancel()]
                self._wake.clear()
                for task in [*done, *late]:
                    if task is not wake and not task.cancelled() and task.exception() is None:
                        await self.send(task.result()[1])

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if "engine" in self.channels:
                now = datetime.now(UTC)
                ts = int(now.timestamp() * 1000)
                await self.send({"type": "HEARTBEAT", "ts": ts, "data": {"timestamp": ts, "latency_ms": 0}})


async def _authenticate(ws: WebSocket, accounts) -> Principal | None:
    token = ws.query_params.get("token")
    headers = {k: v for k, v in ws.headers.items() if k in ("authorization", "x-api-key")}
    if token or headers:
        return await run_in_threadpool(lambda: authenticate_push(accounts, token=token, headers=headers))
    try:
        raw = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S)
    except TimeoutError:
        raise AuthenticationError("no auth message within 10 s") from None
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AuthenticationError("first message must be {\"type\": \"auth\", \"token\": ...}") from None
    if not isinstance(msg, dict) or msg.get("type") != "auth":
        raise AuthenticationError("first message must be {\"type\": \"auth\", \"token\": ...}")
    token, api_key = msg.get("token"), msg.get("api_key")
    return await run_in_threadpool(
        lambda: authenticate_push(accounts, token=token if isinstance(token, str) else None,
                                  api_key=api_key if isinstance(api_key, str) else None)
    )


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message, **extra}}


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    app = ws.app
    await ws.accept()
    try:
        principal = await _authenticate(ws, app.state.accounts)
    except (AuthenticationError, WebSocketDisconnect) as err:
        with contextlib.suppress(Exception):
            await ws.send_text(dumps(_error("UNAUTHORIZED", getattr(err, "message", "authentication failed"))).decode())
            await ws.close(code=4401)
        return
    settings: WsSettings = getattr(app.state, "ws_settings", WsSettings())
    client = Client(ws, principal, app.state.bus, settings)
    client.subscribe("engine")
    await client.send({"type": "auth", "status": "authenticated", "user": principal.username})
    hooks: list[Callable[[Client], Any]] = getattr(app.state, "ws_on_connect", [])
    for hook in hooks:
        await hook(client)
    pump = asyncio.create_task(client.pump())
    beat = asyncio.create_task(client.heartbeat())
    try:
        while True:
            raw = await ws.receive_text()
            if not client.allow_message():
                await client.send(_error("RATE_LIMITED", "more than 100 messages per minute",
                                         retry_after=client.retry_after()))
                continue
            await _handle(client, raw)
    except WebSocketDisconnect:
        pass
    finally:
        pump.cancel()
        beat.cancel()
        client.close()


async def _handle(client: Client, raw: str) -> None:
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        await client.send(_error("VALIDATION_ERROR", "message is not valid JSON"))
        return
    if not isinstance(msg, dict):
        await client.send(_error("VALIDATION_ERROR", "message must be a JSON object"))
        return
    kind = msg.get("type")
    if kind == "ping":
        await client.send({"type": "pong", "timestamp": datetime.now(UTC)})
        return
    if kind == "auth":
        await client.send({"type": "auth", "status": "authenticated", "user": client.principal.username})
        return
    if kind not in ("subscribe", "unsubscribe"):
        await client.send(_error("VALIDATION_ERROR", f"unknown message type {kind!r}; use subscribe, unsubscribe or ping"))
        return
    channels = msg.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        await client.send(_error("VALIDATION_ERROR", "channels must be a non-empty list of strings"))
        return
    try:
        for ch in channels:
            channel_topic(client.principal, ch)
    except InvalidInputError as err:
        await client.send(_error("VALIDATION_ERROR", err.message))
        return
    if kind == "subscribe":
        if not client.scalper_mode:
            client.scalper_mode = True
            if "engine" not in channels:
                client.unsubscribe("engine")
        for ch in channels:
            client.subscribe(_canonical(ch))
        await client.send({"type": "subscribed", "channels": sorted(client.channels)})
    else:
        for ch in channels:
            client.unsubscribe(_canonical(ch))
        await client.send({"type": "unsubscribed", "channels": channels, "active": sorted(client.channels)})


def _canonical(channel: str) -> str:
    if channel.startswith("market:"):
        return "market:" + parse_symbol(channel.split(":", 1)[1]).spell("concat")
    return channel
