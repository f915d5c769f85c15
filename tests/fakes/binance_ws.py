"""Fake Binance market-data WebSocket streams (spot and USD-M futures), enough for ccxt.pro's binance.

ccxt.pro opens one socket per stream group at ``<ws url>/<n>`` and subscribes with
``{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}``; Binance answers
``{"result": null, "id": 1}`` and then pushes the raw events of each stream on that socket
(the ``/ws`` single-stream format, no ``{"stream", "data"}`` wrapper). The streams ccxt uses:

* ``<sym>@trade`` (or ``@aggTrade``)  ``{"e": "trade", "E", "s", "t", "p", "q", "T", "m"}``
* ``<sym>@ticker``                    ``{"e": "24hrTicker", "E", "s", "p", "P", "c", "b", "a", "q", ...}``
* ``<sym>@kline_1m``                  ``{"e": "kline", "E", "s", "k": {"t", "T", "i", "o", "h", "l", "c", "v", "x", ...}}``
* ``<sym>@depth@100ms``               ``{"e": "depthUpdate", "E", "s", "U", "u", "b", "a"}`` (futures add ``T``, ``pu``)

The diff-depth stream needs a REST snapshot to start from: :meth:`FakeBinanceWs.attach`
serves ``/api/v3/depth`` and ``/fapi/v1/depth`` from the same books on the REST fake.

The fake keeps the host of the real URL as the first path segment (``/fstream.binance.com/
market/ws/0``): a socket whose path holds ``/stream`` is spot (``stream.binance.com``), one
holding ``/fstream`` USD-M futures, as ccxt tells them apart. Tests push events with the
``send_*`` methods, wait for subscriptions with :meth:`wait_subscribed` and cut every socket
with :meth:`drop`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from fakes.server import FakeServer, Request, Response


@dataclass
class Book:
    """One symbol's order book on one venue, with Binance's update ids."""

    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    last_update_id: int = 1000

    def apply(self, side: dict[str, str], levels: list[list[str]]) -> None:
        for price, size in levels:
            if float(size) == 0:
                side.pop(price, None)
            else:
                side[price] = size

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return {"lastUpdateId": self.last_update_id, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}


@dataclass
class Socket:
    connection: ServerConnection
    kind: str  # "spot" or "usdm"
    streams: set[str] = field(default_factory=set)


class FakeBinanceWs:
    """A ``websockets`` server on a free 127.0.0.1 port; use as an async context manager."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.sockets: list[Socket] = []
        self.subscriptions: list[tuple[str, str]] = []  # (kind, stream), every SUBSCRIBE ever received
        self.books: dict[tuple[str, str], Book] = {}
        self._books_lock = threading.Lock()  # the REST fake reads books from its own threads
        self._changed = asyncio.Condition()
        self._server: Server | None = None

    # ---- life cycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake WebSocket server is not running")
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def __aenter__(self) -> FakeBinanceWs:
        self._server = await serve(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def attach(self, rest: FakeServer) -> None:
        """Serve the REST depth snapshots ccxt fetches before applying diff-depth events."""
        rest.route("GET", "/api/v3/depth", lambda r: self._depth(r, "spot"))
        rest.route("GET", "/fapi/v1/depth", lambda r: self._depth(r, "usdm"))

    # ---- steering from tests ------------------------------------------------------------
    async def wait_subscribed(self, stream: str, kind: str = "usdm", *, times: int = 1, timeout_s: float = 10) -> None:
        """Return once ``stream`` (e.g. ``btcusdt@trade``) has been subscribed ``times`` times on ``kind`` sockets."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self._subscribed(stream, kind) >= times)

    async def wait_disconnected(self, timeout_s: float = 10) -> None:
        """Return once no socket is open (the client closed them all)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: not self.sockets)

    async def drop(self, *, abrupt: bool = False) -> int:
        """Cut every open socket (a close frame 1001, or ``abrupt``: no frame at all); return how many."""
        sockets, self.sockets = self.sockets, []
        for socket in sockets:
            if abrupt:
                socket.connection.transport.abort()
            else:
                await socket.connection.close(1001, "going away")
        return len(sockets)

    async def send_trade(self, symbol: str, price: str, quantity: str, *, kind: str = "usdm",
                         trade_id: int = 1, at_ms: int | None = None, buyer_maker: bool = False) -> int:
        at = at_ms or self.now_ms
        event = {"e": "trade", "E": at, "s": symbol, "t": trade_id, "p": price, "q": quantity, "T": at,
                 "m": buyer_maker}
        if kind == "spot":
            event.update(b=trade_id * 10, a=trade_id * 10 + 1, M=True)
        else:
            event["X"] = "MARKET"
        return await self._push(kind, f"{symbol.lower()}@trade", event)

    async def send_ticker(self, symbol: str, *, last: str, bid: str, ask: str, open_price: str,
                          quote_volume: str, volume: str = "1000", kind: str = "usdm") -> int:
        change = float(last) - float(open_price)
        event = {
            "e": "24hrTicker", "E": self.now_ms, "s": symbol, "p": f"{change:.2f}",
            "P": f"{change / float(open_price) * 100:.3f}", "w": last, "c": last, "Q": "0.010",
            "o": open_price, "h": max(last, open_price, key=float), "l": min(last, open_price, key=float),
            "v": volume, "q": quote_volume, "O": self.now_ms - 86_400_000, "C": self.now_ms,
            "F": 1, "L": 1000, "n": 1000,
        }
        if kind == "spot":  # spot tickers also carry the best bid and ask
            event.update(x=open_price, b=bid, B="1.5", a=ask, A="2.0")
        return await self._push(kind, f"{symbol.lower()}@ticker", event)

    async def send_kline(self, symbol: str, open_ms: int, ohlcv: tuple[str, str, str, str, str], *,
                         closed: bool, kind: str = "usdm") -> int:
        o, h, lo, c, v = ohlcv
        kline = {"t": open_ms, "T": open_ms + 59_999, "s": symbol, "i": "1m", "f": 1, "L": 2, "o": o, "c": c,
                 "h": h, "l": lo, "v": v, "n": 2, "x": closed, "q": f"{float(v) * float(c):.4f}",
                 "V": "0", "Q": "0", "B": "0"}
        event = {"e": "kline", "E": open_ms + (59_999 if closed else 30_000), "s": symbol, "k": kline}
        return await self._push(kind, f"{symbol.lower()}@kline_1m", event)

    async def send_depth(self, symbol: str, bids: list[list[str]], asks: list[list[str]], *,
                         kind: str = "usdm") -> int:
        """Change the book (size "0" removes a level) and push the diff to depth subscribers."""
        book = self.book(symbol, kind)
        with self._books_lock:
            previous = book.last_update_id
            book.last_update_id += 1
            book.apply(book.bids, bids)
            book.apply(book.asks, asks)
        event: dict[str, Any] = {"e": "depthUpdate", "E": self.now_ms, "s": symbol, "U": previous + 1,
                                 "u": book.last_update_id, "b": bids, "a": asks}
        if kind == "usdm":
            event.update(T=self.now_ms, pu=previous)
        return await self._push(kind, f"{symbol.lower()}@depth", event)

    def book(self, symbol: str, kind: str = "usdm") -> Book:
        return self.books.setdefault((kind, symbol), Book())

    # ---- internals ----------------------------------------------------------------------
    def _subscribed(self, stream: str, kind: str) -> int:
        return sum(1 for k, s in self.subscriptions if k == kind and (s == stream or s.startswith(stream + "@")))

    async def _push(self, kind: str, stream: str, event: dict[str, Any]) -> int:
        """Send ``event`` to every ``kind`` socket subscribed to ``stream`` (any ``@<rate>`` suffix); return how many."""
        payload = json.dumps(event, separators=(",", ":"))
        sent = 0
        for socket in list(self.sockets):
            if socket.kind == kind and any(s == stream or s.startswith(stream + "@") for s in socket.streams):
                try:
                    await socket.connection.send(payload)
                    sent += 1
                except ConnectionClosed:
                    pass
        return sent

    async def _serve(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        socket = Socket(connection, "usdm" if "/fstream" in path else "spot")
        self.sockets.append(socket)
        try:
            async for raw in connection:
                request = json.loads(raw)
                method, params, request_id = request.get("method"), request.get("params") or [], request.get("id")
                if method == "SUBSCRIBE":
                    socket.streams.update(params)
                    await connection.send(json.dumps({"result": None, "id": request_id}))
                    async with self._changed:
                        self.subscriptions.extend((socket.kind, p) for p in params)
                        self._changed.notify_all()
                elif method == "UNSUBSCRIBE":
                    socket.streams.difference_update(params)
                    await connection.send(json.dumps({"result": None, "id": request_id}))
                else:
                    await connection.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"},
                                                      "id": request_id}))
        except ConnectionClosed:
            pass
        finally:
            async with self._changed:
                if socket in self.sockets:
                    self.sockets.remove(socket)
                self._changed.notify_all()

    def _depth(self, request: Request, kind: str) -> Response:
        symbol = request.query.get("symbol", "")
        limit = int(request.query.get("limit", 100))
        with self._books_lock:
            snapshot = self.book(symbol, kind).snapshot(limit)
        if kind == "usdm":
            snapshot.update(E=self.now_ms, T=self.now_ms)
        return Response.json(snapshot)
