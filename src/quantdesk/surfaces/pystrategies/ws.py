"""``/python/ws``: events of the caller's hosted strategies (the reference's "WebSocket Events").

Auth with ``?token=`` (JWT or API key), an ``Authorization``/``X-API-Key`` header, or a first
message ``{"type": "auth", "token": ...}``. After auth the server sends
``{"type": "connected", "data": {"user": ...}}``; then every message is
``{"type": ..., "data": {"id": <strategy id>, ...}}``:

* ``strategy_started``: ``name``, ``pid``, ``started_at``, ``trigger`` (user | schedule);
* ``strategy_stopped``: ``name``, ``pid``, ``status`` (stopped | error), ``exit_code``, ``reason``,
  ``exited`` (true when the process ended on its own), ``stopped_at``;
* ``strategy_log``: ``name``, ``message`` (one output line), ``timestamp``.

Start/stop events are never dropped; log lines (at most 50 per second per strategy; the log file keeps
all) are dropped oldest-first for a slow client.
A client may send ``{"type": "ping"}`` and gets ``{"type": "pong", "data": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from quantdesk.core.errors import AuthenticationError
from quantdesk.services.accounts import Principal
from quantdesk.services.pystrategies import EVENTS_CHANNEL, LOG_CHANNEL
from quantdesk.services.topics import user_topic
from quantdesk.surfaces.shared.auth import authenticate_push
from quantdesk.surfaces.shared.responses import dumps

router = APIRouter()

AUTH_TIMEOUT_S = 10.0
LOG_QUEUE = 1000


async def _authenticate(ws: WebSocket) -> Principal:
    accounts = ws.app.state.accounts
    token = ws.query_params.get("token")
    headers = {k: v for k, v in ws.headers.items() if k in ("authorization", "x-api-key")}
    if token or headers:
        return await run_in_threadpool(lambda: authenticate_push(accounts, token=token, headers=headers))
    try:
        msg = orjson.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
    except (TimeoutError, orjson.JSONDecodeError):
        raise AuthenticationError('send ?token= or a first message {"type": "auth", "token": ...}') from None
    if not isinstance(msg, dict) or msg.get("type") != "auth" or not isinstance(msg.get("token"), str):
        raise AuthenticationError('first message must be {"type": "auth", "token": ...}')
    return await run_in_threadpool(lambda: authenticate_push(accounts, token=msg["token"]))


async def _send(ws: WebSocket, message: dict) -> None:
    await ws.send_text(dumps(message).decode())


@router.websocket("/python/ws")
async def python_ws(ws: WebSocket) -> None:
    await ws.accept()
    try:
        principal = await _authenticate(ws)
    except (AuthenticationError, WebSocketDisconnect) as err:
        with contextlib.suppress(Exception):
            await _send(ws, {"type": "error", "data": {"error_code": "UNAUTHORIZED",
                                                       "message": getattr(err, "message", "authentication failed")}})
            await ws.close(code=4401)
        return
    bus = ws.app.state.bus
    events = bus.subscribe(user_topic(principal.user_id, EVENTS_CHANNEL), lossless=True)
    lines = bus.subscribe(user_topic(principal.user_id, LOG_CHANNEL), maxsize=LOG_QUEUE)
    await _send(ws, {"type": "connected", "data": {"user": principal.username}})

    async def pump() -> None:
        queues = {"events": events, "lines": lines}
        waiting = {name: asyncio.ensure_future(sub.get()) for name, sub in queues.items()}
        try:
            while True:
                done, _ = await asyncio.wait(waiting.values(), return_when=asyncio.FIRST_COMPLETED)
                for name, task in list(waiting.items()):
                    if task in done:
                        await _send(ws, task.result()[1])
                        waiting[name] = asyncio.ensure_future(queues[name].get())
        finally:
            for task in waiting.values():
                task.cancel()

    forward = asyncio.create_task(pump())
    try:
        while True:
            raw = await ws.receive_text()
            with contextlib.suppress(orjson.JSONDecodeError):
                msg = orjson.loads(raw)
                if isinstance(msg, dict) and msg.get("type") == "ping":
                    await _send(ws, {"type": "pong", "data": {"timestamp": datetime.now(UTC)}})
    except WebSocketDisconnect:
        pass
    finally:
        forward.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forward
        events.close()
        lines.close()
