"""FluxScan Socket.IO on the app's port at ``/socket.io``: scan progress for the scan's owner.

Clients authenticate in the connect auth payload ``{"token": "<jwt or api key>"}`` (or an
``Authorization``/``X-API-Key`` handshake header); anything else is refused. ``subscribe_scan
{scan_id}`` joins the scan's room (only its owner may) and answers with the scan's current
state at once; then ``scan_progress {scan_id, progress, symbol, symbols_scanned,
signals_found, ...}`` and ``scan_complete {scan_id, status, total_scanned, signals_found}``
arrive as the bus carries them (topic ``fluxscan.scan.<id>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio
from starlette.types import ASGIApp, Receive, Scope, Send

from quantdesk.core.errors import QuantdeskError
from quantdesk.services.accounts import AccountService
from quantdesk.services.fluxscan_ports import FINISHED_SCANS
from quantdesk.services.fluxscan_scans import TOPIC_PREFIX, ScanService
from quantdesk.surfaces.shared.auth import authenticate_push

log = logging.getLogger(__name__)

PATH = "/socket.io"


def _room(scan_id: int) -> str:
    return f"scan:{scan_id}"


def _scan_id(data: Any) -> int | None:
    raw = data.get("scan_id") if isinstance(data, dict) else data
    text = str(raw).strip().lower().removeprefix("scan_") if raw is not None else ""
    return int(text) if text.isdigit() else None


class FluxScanSocket:
    """The Socket.IO server and the bridge from the event bus to its scan rooms."""

    def __init__(self, accounts: AccountService, scans: ScanService, bus: Any):
        self.accounts = accounts
        self.scans = scans
        self.bus = bus
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", logger=False,
                                        engineio_logger=False)
        self.asgi = socketio.ASGIApp(self.sio, socketio_path=PATH.strip("/"))
        self._task: asyncio.Task | None = None
        self._sub = None
        self.sio.on("connect", self._connect)
        self.sio.on("subscribe_scan", self._subscribe)
        self.sio.on("unsubscribe_scan", self._unsubscribe)

    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else (auth if isinstance(auth, str) else None)
        headers = {}
        for name, key in (("HTTP_AUTHORIZATION", "authorization"), ("HTTP_X_API_KEY", "x-api-key")):
            if environ.get(name):
                headers[key] = environ[name]
        try:
            principal = await asyncio.to_thread(authenticate_push, self.accounts, token=token, headers=headers)
        except QuantdeskError as exc:
            raise socketio.exceptions.ConnectionRefusedError({"message": exc.message}) from None
        await self.sio.save_session(sid, {"principal": principal})

    async def _subscribe(self, sid: str, data: Any = None) -> dict:
        scan_id = _scan_id(data)
        if scan_id is None:
            return {"error": "scan_id is required (e.g. {\"scan_id\": 12})"}
        principal = (await self.sio.get_session(sid))["principal"]
        await self.sio.enter_room(sid, _room(scan_id))
        try:
            scan = await asyncio.to_thread(self.scans.scan_status, principal, scan_id)
        except QuantdeskError as exc:
            await self.sio.leave_room(sid, _room(scan_id))
            await self.sio.emit("error", {"scan_id": scan_id, "message": exc.message}, to=sid)
            return {"error": exc.message}
        # the current state at once, so a late subscriber misses nothing that matters
        if scan.status in FINISHED_SCANS:
            await self.sio.emit("scan_complete", {
                "scan_id": scan.id, "status": scan.status.value, "total_scanned": scan.symbols_scanned,
                "symbols_scanned": scan.symbols_scanned, "total_symbols": scan.total_symbols,
                "signals_found": scan.signals_found, "progress": int(scan.progress), "error": scan.error}, to=sid)
        else:
            await self.sio.emit("scan_progress", {
                "scan_id": scan.id, "status": scan.status.value, "progress": int(scan.progress), "symbol": None,
                "symbols_scanned": scan.symbols_scanned, "total_symbols": scan.total_symbols,
                "signals_found": scan.signals_found}, to=sid)
        return {"subscribed": True, "scan_id": scan_id}

    async def _unsubscribe(self, sid: str, data: Any = None) -> dict:
        scan_id = _scan_id(data)
        if scan_id is not None:
            await self.sio.leave_room(sid, _room(scan_id))
        return {"unsubscribed": scan_id is not None, "scan_id": scan_id}

    async def start(self) -> None:
        """Start forwarding scan events from the bus to the scan rooms."""
        if self._task is None:
            self._sub = self.bus.subscribe(TOPIC_PREFIX + "*", maxsize=10_000)
            self._task = asyncio.create_task(self._bridge(), name="fluxscan-socketio-bridge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    async def _bridge(self) -> None:
        sub = self._sub
        while True:
            topic, message = await sub.get()
            try:
                scan_id = int(topic.removeprefix(TOPIC_PREFIX))
                await self.sio.emit(message["type"], message["data"], room=_room(scan_id))
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad message must not stop the bridge
                log.exception("could not forward %s to Socket.IO", topic)


class SocketIOMount:
    """ASGI middleware sending ``/socket.io`` to the Socket.IO app and everything else on."""

    def __init__(self, app: ASGIApp, socket: FluxScanSocket):
        self.app = app
        self.socket = socket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (scope["path"] == PATH or scope["path"].startswith(PATH + "/")):
            await self.socket.asgi(scope, receive, send)
            return
        await self.app(scope, receive, send)
