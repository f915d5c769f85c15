"""Async and sync Python clients for the Crypto Scalper API (``/api/v1`` and ``/ws``).

Usage, as in the reference::

    async with TradingClient(api_url="http://localhost:8000", api_key="qd_...") as client:
        balance = await client.get_balance()
        order = await client.place_order(symbol="BTCUSDT", side="buy", quantity=0.1, order_type="market")
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from quantdesk.client.errors import ApiError, RateLimited
from quantdesk.client.models import (
    Account,
    Backtest,
    Balance,
    BotStatus,
    CloseResult,
    Order,
    PnL,
    Position,
    Strategy,
    Trade,
)


def _num(value: Any) -> Any:
    """Send Decimals as JSON numbers without losing digits."""
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    return value


def _loads(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal) if content else None


class TradingClient:
    """Async client. ``api_key`` is sent as ``X-API-Key``; or pass ``token`` for a bearer JWT.

    429 replies are retried after the server's ``retry_after`` (up to ``max_retries`` times).
    """

    def __init__(self, api_url: str = "http://localhost:8000", api_key: str | None = None, *,
                 token: str | None = None, timeout: float = 30.0, max_retries: int = 3,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._api_key = api_key
        self._token = token
        self.max_retries = max_retries
        self._http = httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> TradingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if json_body is not None:
            json_body = {k: _num(v) for k, v in json_body.items()}
        for attempt in range(self.max_retries + 1):
            resp = await self._http.request(method, "/api/v1" + path, json=json_body, params=params)
            if resp.status_code < 400:
                return _loads(resp.content)
            err = self._error(resp)
            if isinstance(err, RateLimited) and attempt < self.max_retries:
                await asyncio.sleep(err.retry_after)
                continue
            raise err
        raise AssertionError("unreachable")

    @staticmethod
    def _error(resp: httpx.Response) -> ApiError:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        args = (resp.status_code, error.get("code", "HTTP_ERROR"), error.get("message", resp.text[:200]))
        kwargs = {"details": error.get("details"), "request_id": body.get("request_id") if isinstance(body, dict) else None}
        if resp.status_code == 429:
            retry = error.get("retry_after") or resp.headers.get("retry-after") or 1
            return RateLimited(*args, retry_after=float(retry), **kwargs)
        return ApiError(*args, **kwargs)

    # -- account ---------------------------------------------------------------------------
    async def get_account(self) -> Account:
        return Account.from_dict(await self._request("GET", "/account"))

    async def get_balance(self, asset: str | None = None) -> Balance:
        return Balance.from_dict(await self._request("GET", "/balance", params={"asset": asset}))

    async def get_positions(self, symbol: str | None = None, side: str | None = None) -> list[Position]:
        data = await self._request("GET", "/positions", params={"symbol": symbol, "side": side})
        return [Position.from_dict(p) for p in data["positions"]]

    async def get_trades(self, symbol: str | None = None, start_time: datetime | str | None = None,
                         end_time: datetime | str | None = None, limit: int = 100, offset: int = 0) -> list[Trade]:
        params = {"symbol": symbol, "limit": limit, "offset": offset,
                  "start_time": start_time.isoformat() if isinstance(start_time, datetime) else start_time,
                  "end_time": end_time.isoformat() if isinstance(end_time, datetime) else end_time}
        data = await self._request("GET", "/trades", params=params)
        return [Trade.from_dict(t) for t in data["trades"]]

    # -- trading ---------------------------------------------------------------------------
    async def place_order(self, symbol: str, side: str, quantity: float | Decimal, order_type: str = "market", *,
                          price: float | Decimal | None = None, stop_price: float | Decimal | None = None,
                          stop_loss: float | Decimal | None = None, take_profit: float | Decimal | None = None,
                          reduce_only: bool = False, time_in_force: str = "GTC") -> Order:
        body = {"symbol": symbol, "side": side, "type": order_type, "quantity": quantity, "price": price,
                "stop_price": stop_price, "stop_loss": stop_loss, "take_profit": take_profit,
                "reduce_only": reduce_only, "time_in_force": time_in_force}
        return Order.from_dict(await self._request("POST", "/orders", json_body=body))

    async def cancel_order(self, order_id: str) -> Order:
        return Order.from_dict(await self._request("DELETE", f"/orders/{order_id}"))

    async def close_position(self, symbol: str, quantity: float | Decimal | None = None,
                             order_type: str = "market") -> CloseResult:
        body: dict[str, Any] = {"type": order_type}
        if quantity is not None:
            body["quantity"] = quantity
        return CloseResult.from_dict(await self._request("POST", f"/positions/{symbol}/close", json_body=body))

    async def close_all_positions(self) -> dict[str, Any]:
        return await self._request("POST", "/positions/close-all")

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        return await self._request("PUT", f"/leverage/{symbol}", json_body={"leverage": leverage})

    # -- bot -------------------------------------------------------------------------------
    async def get_bot_status(self) -> BotStatus:
        return BotStatus.from_dict(await self._request("GET", "/bot/status"))

    async def start_bot(self, paper_trading: bool = True, strategies: Iterable[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"paper_trading": paper_trading}
        if strategies is not None:
            body["strategies"] = list(strategies)
        return await self._request("POST", "/bot/start", json_body=body)

    async def stop_bot(self, close_positions: bool = False) -> dict[str, Any]:
        return await self._request("POST", "/bot/stop", json_body={"close_positions": close_positions})

    async def get_pnl(self, period: str = "daily") -> PnL:
        return PnL.from_dict(await self._request("GET", "/pnl", params={"period": period}))

    # -- strategies and backtests ------------------------------------------------------------
    async def get_strategies(self) -> list[Strategy]:
        data = await self._request("GET", "/strategies")
        return [Strategy.from_dict(s) for s in data["strategies"]]

    async def update_strategy(self, name: str, *, enabled: bool | None = None,
                              parameters: dict[str, Any] | None = None) -> Strategy:
        body = {k: v for k, v in {"enabled": enabled, "parameters": parameters}.items() if v is not None}
        return Strategy.from_dict(await self._request("PUT", f"/strategies/{name}", json_body=body))

    async def run_backtest(self, strategy: str, symbol: str, start_date: str, end_date: str, *,
                           initial_balance: float = 10000, leverage: int = 1, commission_rate: float = 0.001,
                           parameters: dict[str, Any] | None = None) -> Backtest:
        body = {"strategy": strategy, "symbol": symbol, "start_date": start_date, "end_date": end_date,
                "initial_balance": initial_balance, "leverage": leverage, "commission_rate": commission_rate,
                "parameters": parameters or {}}
        return Backtest.from_dict(await self._request("POST", "/backtest", json_body=body))

    async def get_backtest(self, backtest_id: str) -> Backtest:
        return Backtest.from_dict(await self._request("GET", f"/backtest/{backtest_id}"))

    async def wait_for_backtest(self, backtest_id: str, *, poll_s: float = 0.5, timeout_s: float = 600) -> Backtest:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            bt = await self.get_backtest(backtest_id)
            if bt.status in ("completed", "failed", "cancelled"):
                return bt
            if loop.time() > deadline:
                raise TimeoutError(f"backtest {backtest_id} still {bt.status} after {timeout_s} s")
            await asyncio.sleep(poll_s)

    # -- WebSocket -------------------------------------------------------------------------
    async def subscribe(self, *channels: str) -> AsyncIterator[dict[str, Any]]:
        """Yield messages of the given channels (``market:BTCUSDT``, ``orders``, ``positions``, ...) from ``/ws``.

        Messages start after the server acknowledged the subscription; control messages
        (``auth``, ``subscribed``, ``pong``) and the Breakout event stream (unless ``engine`` is
        asked for) are skipped. Amounts arrive as Decimal. Raises ApiError when the server
        refuses the credentials or the channels.
        """
        import websockets

        url = self.api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
        async with websockets.connect(url) as ws:
            auth = {"type": "auth", "token": self._token} if self._token else {"type": "auth", "api_key": self._api_key}
            await ws.send(json.dumps(auth))
            first = json.loads(await ws.recv())
            if first.get("type") == "error":
                err = first.get("error", {})
                raise ApiError(401, err.get("code", "UNAUTHORIZED"), err.get("message", ""))
            await ws.send(json.dumps({"type": "subscribe", "channels": list(channels)}))
            engine = "engine" in channels
            acknowledged = False
            async for raw in ws:
                msg = json.loads(raw, parse_float=Decimal)
                kind = msg.get("type")
                if kind == "error":
                    err = msg.get("error", {})
                    raise ApiError(400, err.get("code", "VALIDATION_ERROR"), err.get("message", ""))
                if kind == "subscribed":
                    acknowledged = True
                    continue
                if not acknowledged or kind in ("auth", "pong", "unsubscribed"):
                    continue
                if isinstance(kind, str) and kind.isupper() and not engine:
                    continue  # the Breakout stream (HEARTBEAT, ENGINE_UPDATE, ...)
                yield msg


class SyncTradingClient:
    """Blocking wrapper: every coroutine method of TradingClient as a plain method."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._loop = asyncio.new_event_loop()
        self._client = TradingClient(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncTradingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
