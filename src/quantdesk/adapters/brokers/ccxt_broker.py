"""A live broker over ccxt (Binance USD-M futures by default): the engine's LiveBroker port.

``CcxtBroker`` places, cancels and reads orders, balances, positions and leverage through
ccxt's unified, signed methods; the kernel reaches it through ``engine.live.LiveExecution``.
Quantities and prices cross the boundary as exact Decimals: sent to ccxt as strings, and
every number ccxt returns is converted once with ``Decimal(str(x))``.

Errors are translated here and nowhere else (STYLE §4):

- ccxt ``InsufficientFunds`` → InsufficientBalanceError (``INSUFFICIENT_BALANCE``);
- ``OrderNotFound`` → NotFoundError (``ORDER_NOT_FOUND``); ``InvalidOrder`` and other
  refusals of an order → OrderRejectedError;
- ``AuthenticationError`` (bad key or signature, missing permission) → AuthenticationError;
- ``NetworkError`` (timeouts, 429/418 ``RateLimitExceeded``/``DDoSProtection``, 5xx
  ``ExchangeNotAvailable``) → retried with exponential backoff (honouring ``Retry-After``),
  then UpstreamUnavailableError (``EXCHANGE_ERROR``).

A new order carries our order id as its client order id. If placing it fails in transit,
the order is looked up by that id before it is sent again, so a lost reply never places it
twice. Credentials never appear in messages or reprs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import ccxt

from quantdesk.adapters.wire import clip as _clip
from quantdesk.adapters.wire import rebase_urls as _rebase
from quantdesk.adapters.wire import retry_after_seconds as _retry_after
from quantdesk.core.errors import (
    AuthenticationError,
    ConfigError,
    InsufficientBalanceError,
    InvalidInputError,
    NotFoundError,
    OrderRejectedError,
    UpstreamUnavailableError,
)
from quantdesk.core.instruments import Venue, parse_symbol
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import Balance
from quantdesk.engine.ports import VenueOrder, VenuePosition

# ccxt's unified order status → ours
_STATUS = {"open": OrderStatus.ACCEPTED, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
           "cancelled": OrderStatus.CANCELLED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}
_TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit"}
# Per-exchange options, as data. Binance: only USD-M markets (one exchangeInfo call), no
# currency list (a spot-wallet endpoint), and the v2 account/positionRisk documents, whose
# positions carry their leverage.
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False,
                "fetchBalance": {"useV2": True}, "fetchPositionsRisk": {"useV2": True}},
}


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


def _reveal(value: str | _Secret) -> str:
    return value if isinstance(value, str) else value.get_secret_value()


class CcxtBroker:
    """LiveBroker over one ccxt exchange account (``market_type`` ``future``: USDT perpetuals, or ``spot``)."""

    def __init__(
        self,
        exchange_id: str = "binance",
        api_key: str | _Secret = "",
        secret: str | _Secret = "",
        *,
        base_url: str | None = None,
        market_type: str = "future",
        rate_limit: bool = True,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        options: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        exchange_class = getattr(ccxt, exchange_id, None)
        if exchange_id not in ccxt.exchanges or exchange_class is None:
            raise ConfigError(f"ccxt exchange {exchange_id!r} is unknown; use one of ccxt.exchanges (e.g. binance)")
        if market_type not in ("future", "spot"):
            raise ConfigError(f"market_type {market_type!r} is not one of future, spot")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts {max_attempts} must be at least 1")
        self.exchange_id = exchange_id
        self.market_type = market_type
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._lock = threading.RLock()  # ccxt's sync exchanges are not thread-safe
        default_type = {"defaultType": "swap" if market_type == "future" else "spot"}
        self._exchange = exchange_class({
            "apiKey": _reveal(api_key),
            "secret": _reveal(secret),
            "enableRateLimit": rate_limit,
            "timeout": int(timeout_s * 1000),
            "options": {**EXCHANGE_OPTIONS.get(exchange_id, {}), **default_type, **dict(options or {})},
        })
        if base_url:
            self._exchange.urls["api"] = _rebase(self._exchange.urls["api"], base_url.rstrip("/"))
            # Binance picks its error table by host (fapi.binance.com → "linear"); on another
            # host only the common table applies, which lacks -2019 "Margin is insufficient".
            tables = getattr(self._exchange, "exceptions", {})
            section = tables.get("linear" if market_type == "future" else "spot")
            if isinstance(section, dict):
                for kind in ("exact", "broad"):
                    tables[kind] = {**tables.get(kind, {}), **section.get(kind, {})}

    def __repr__(self) -> str:
        return f"CcxtBroker(exchange_id={self.exchange_id!r}, market_type={self.market_type!r})"

    # ---- LiveBroker -----------------------------------------------------------------------
    def submit_order(self, order: Order) -> VenueOrder:
        """Place a market or limit ``order`` with its id as the client order id."""
        kind = _TYPES.get(order.type)
        if kind is None or order.quantity is None:
            raise OrderRejectedError(
                f"order {order.id}: {self.exchange_id} takes market and limit orders with a quantity, "
                f"got {order.type.value}" + ("" if order.quantity is not None else " without a quantity"),
                details={"order_id": order.id, "type": order.type.value})
        symbol = self._symbol(order.symbol)
        client_id = order.client_order_id or order.id
        params: dict[str, Any] = {"newClientOrderId": client_id}
        if order.reduce_only:
            params["reduceOnly"] = True
        if kind == "limit" and order.time_in_force is not TimeInForce.GTC:
            params["timeInForce"] = order.time_in_force.value.upper()
        price = str(order.price) if order.price is not None else None

        def lookup() -> Any:
            # the order may have reached the venue though its reply was lost
            try:
                return self._exchange.fetch_order(None, symbol, {"origClientOrderId": client_id})
            except ccxt.OrderNotFound:
                return None

        reply = self._call(f"create_order {symbol}", self._exchange.create_order, symbol, kind,
                           order.side.value, str(order.quantity), price, params, order_id=order.id,
                           before_retry=lookup)
        return self._venue_order(reply, order.symbol)

    def cancel_order(self, symbol: str, venue_order_id: str) -> VenueOrder:
        """Cancel a resting order; NotFoundError when the venue no longer has it open."""
        reply = self._call(f"cancel_order {venue_order_id}", self._exchange.cancel_order, venue_order_id,
                           self._symbol(symbol), order_id=venue_order_id)
        return self._venue_order(reply, symbol)

    def fetch_order(self, symbol: str, venue_order_id: str) -> VenueOrder:
        reply = self._call(f"fetch_order {venue_order_id}", self._exchange.fetch_order, venue_order_id,
                           self._symbol(symbol), order_id=venue_order_id)
        return self._venue_order(reply, symbol)

    def fetch_balances(self) -> list[Balance]:
        """Balances per asset: ``free`` is available to trade, ``locked`` is in use (margin, orders)."""
        reply = self._call("fetch_balance", self._exchange.fetch_balance)
        out = []
        for asset in sorted(reply.get("total") or {}):
            free, used = (reply.get("free") or {}).get(asset), (reply.get("used") or {}).get(asset)
            if free is None and used is None:
                continue
            out.append(Balance(asset, _dec(free), _dec(used)))
        return out

    def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        """Open positions (non-zero quantity), signed: negative is short."""
        wanted = [self._symbol(s) for s in symbols] if symbols else None
        reply = self._call("fetch_positions", self._exchange.fetch_positions, wanted)
        out = []
        for p in reply:
            contracts = _dec(p.get("contracts"))
            if not contracts:
                continue
            size = contracts * _dec(p.get("contractSize") or 1)
            sign = -1 if p.get("side") == "short" else 1
            leverage = p.get("leverage")
            out.append(VenuePosition(
                symbol=self._ours(p["symbol"]), quantity=sign * size, entry_price=_dec(p.get("entryPrice")),
                leverage=int(leverage) if leverage is not None else None,
                unrealized_pnl=_dec(p.get("unrealizedPnl"))))
        return out

    def set_leverage(self, symbol: str, leverage: int) -> None:
        if not 1 <= leverage <= 125:
            raise InvalidInputError(f"leverage {leverage} is outside 1..125", field="leverage")
        self._call(f"set_leverage {symbol}", self._exchange.set_leverage, leverage, self._symbol(symbol))

    # ---- internals ------------------------------------------------------------------------
    def _symbol(self, symbol: str) -> str:
        iid = parse_symbol(symbol)
        if iid.venue != Venue.CRYPTO or not iid.quote:
            raise InvalidInputError(f"symbol {symbol!r} is not a crypto pair; {self.exchange_id} trades crypto only",
                                    field="symbol")
        pair = f"{iid.base}/{iid.quote}"
        return f"{pair}:{iid.quote}" if self.market_type == "future" else pair

    @staticmethod
    def _ours(ccxt_symbol: str) -> str:
        iid = parse_symbol(ccxt_symbol)
        return f"{iid.base}{iid.quote}"

    def _venue_order(self, reply: Mapping[str, Any], symbol: str) -> VenueOrder:
        status = _STATUS.get(str(reply.get("status")), OrderStatus.ACCEPTED)
        filled = _dec(reply.get("filled"))
        if status is OrderStatus.ACCEPTED and filled:
            status = OrderStatus.PARTIALLY_FILLED
        average = reply.get("average")
        price = reply.get("price")
        stamp = reply.get("lastUpdateTimestamp") or reply.get("timestamp")
        return VenueOrder(
            venue_order_id=str(reply["id"]), client_order_id=reply.get("clientOrderId"), symbol=symbol,
            side=OrderSide(str(reply.get("side")).lower()),
            type=OrderType.LIMIT if reply.get("type") == "limit" else OrderType.MARKET,
            status=status, quantity=_dec(reply.get("amount")), filled_quantity=filled,
            average_price=_dec(average) if average and filled else None,
            price=_dec(price) if price else None,
            updated_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None,
        )

    def _markets(self) -> None:
        if not self._exchange.markets:
            self._call("load_markets", self._exchange.load_markets, markets_needed=False)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, order_id: str | None = None,
              before_retry: Callable[[], Any] | None = None, markets_needed: bool = True, **kwargs: Any) -> Any:
        """Run one ccxt call, retrying transient failures; translate ccxt errors into ours."""
        if markets_needed:
            self._markets()
        delay = self.backoff_s
        failure = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = 0.0
            try:
                with self._lock:
                    if attempt > 1 and before_retry is not None:
                        found = before_retry()
                        if found is not None:
                            return found
                    return fn(*args, **kwargs)
            except ccxt.InsufficientFunds as exc:
                raise InsufficientBalanceError(
                    f"{self.exchange_id} refused {what}: insufficient balance ({_clip(exc)})",
                    details={"exchange": self.exchange_id, "order_id": order_id}) from exc
            except ccxt.OrderNotFound as exc:
                raise NotFoundError("order", order_id, code="ORDER_NOT_FOUND",
                                    message=f"{self.exchange_id} has no open order {order_id}") from exc
            except ccxt.AuthenticationError as exc:
                raise AuthenticationError(
                    f"{self.exchange_id} refused the API credentials for {what}: {_clip(exc)}; "
                    "check the key, the secret and the key's permissions",
                    code="EXCHANGE_AUTH_FAILED", details={"exchange": self.exchange_id}) from exc
            except (ccxt.InvalidOrder, ccxt.OperationRejected) as exc:
                raise OrderRejectedError(f"{self.exchange_id} rejected {what}: {_clip(exc)}",
                                         details={"exchange": self.exchange_id, "order_id": order_id}) from exc
            except ccxt.BadSymbol as exc:
                raise NotFoundError("market", what, message=f"{self.exchange_id}: {_clip(exc)}") from exc
            except ccxt.BadRequest as exc:
                if order_id is not None and what.startswith("create_order"):
                    raise OrderRejectedError(f"{self.exchange_id} rejected {what}: {_clip(exc)}",
                                             details={"exchange": self.exchange_id, "order_id": order_id}) from exc
                raise InvalidInputError(f"{self.exchange_id} refused {what}: {_clip(exc)}") from exc
            except ccxt.NetworkError as exc:
                # timeouts, refused connections, 429/418 and 5xx: worth another try
                failure = f"{type(exc).__name__}: {_clip(exc)}"
                retry_after = _retry_after(self._exchange.last_response_headers)
            except ccxt.BaseError as exc:
                raise UpstreamUnavailableError(f"{self.exchange_id} {what} failed: {_clip(exc)}",
                                               details={"exchange": self.exchange_id, "call": what}) from exc
            if attempt < self.max_attempts:
                self._sleep(min(max(delay, retry_after), self.max_backoff_s))
                delay *= 2
        raise UpstreamUnavailableError(
            f"{self.exchange_id} {what} failed after {self.max_attempts} attempts: {failure}",
            details={"exchange": self.exchange_id, "call": what, "attempts": self.max_attempts})


def _dec(value: Any) -> Decimal:
    """A ccxt number (float, int, str or None) as an exact Decimal, converted once (STYLE §3)."""
    if value is None or value == "":
        return Decimal(0)
    return Decimal(str(value))








__all__ = ["CcxtBroker", "EXCHANGE_OPTIONS"]
