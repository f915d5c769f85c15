"""Fake Binance REST API (spot ``/api/v3`` and USD-M futures ``/fapi/v1``), enough for ccxt.

Serves what ``ccxt.binance`` calls for ``load_markets`` (both ``exchangeInfo`` documents, in
the shape of the captured payloads in ``data/``), ``fetch_ohlcv`` (``klines`` with
``symbol interval startTime endTime limit``: bars opening at or after ``startTime`` and at
or before ``endTime``, oldest first, at most ``limit``; only ``endTime`` gives the newest
``limit`` bars before it) and ``fetch_ticker`` (``ticker/24hr``). Like the real venue, the
newest kline is the one still open at ``now_ms``. Errors use Binance's ``{"code","msg"}``
bodies with its status codes.

:meth:`FakeBinance.enable_futures_trading` adds the signed USD-M futures endpoints ccxt's
binance calls (see :class:`FuturesVenue`): orders, balance, positions and leverage, each
checking the ``X-MBX-APIKEY`` header and the HMAC-SHA256 ``signature`` over the query or
form body with the account's secret, as Binance does.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

from fakes.candles import candle
from fakes.server import FakeServer, Request, Response

DATA = Path(__file__).parent / "data"
INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
SPOT_MAX_LIMIT, USDM_MAX_LIMIT = 1000, 1500
RATE_LIMIT_BODY = {
    "code": -1003,
    "msg": "Too many requests; current limit of IP(127.0.0.1) request weight is 6000 per minute. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
}


@dataclass(frozen=True)
class Market:
    base: str
    quote: str
    listed_at: datetime = datetime(2020, 1, 1, tzinfo=UTC)

    @property
    def id(self) -> str:
        return f"{self.base}{self.quote}"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class FakeBinance(FakeServer):
    """Binance spot and USD-M futures market data for ``markets``, at the fixed instant ``now``."""

    def __init__(
        self, now: datetime, markets: tuple[Market, ...] = (Market("BTC", "USDT"), Market("ETH", "USDT"))
    ):
        super().__init__()
        self.now_ms = _ms(now)
        self.markets = {m.id: m for m in markets}
        self.route("GET", "/api/v3/exchangeInfo", lambda r: self._exchange_info("spot"))
        self.route("GET", "/fapi/v1/exchangeInfo", lambda r: self._exchange_info("usdm"))
        self.route("GET", "/api/v3/klines", lambda r: self._klines(r, SPOT_MAX_LIMIT, "spot"))
        self.route("GET", "/fapi/v1/klines", lambda r: self._klines(r, USDM_MAX_LIMIT, "usdm"))
        self.route("GET", "/api/v3/ticker/24hr", lambda r: self._ticker(r, "spot"))
        self.route("GET", "/fapi/v1/ticker/24hr", lambda r: self._ticker(r, "usdm"))

    def enable_futures_trading(self, api_key: str, secret: str, *, balance: Decimal = Decimal(10_000),
                               prices: dict[str, Decimal] | None = None, taker_fee: Decimal = Decimal("0.0004"),
                               maker_fee: Decimal = Decimal("0.0002")) -> FuturesVenue:
        """Serve the signed USD-M futures endpoints for one account; return the venue to steer prices."""
        venue = FuturesVenue(api_key, secret, balance, dict(prices or {}), taker_fee, maker_fee, self.now_ms)
        venue.install(self)
        self.futures = venue
        return venue

    def rate_limited(self, path: str, *, times: int | None = 1, retry_after_s: int = 1) -> None:
        """Answer ``path`` with Binance's 429 (and its ``Retry-After``) ``times`` times."""
        self.fail(path, 429, RATE_LIMIT_BODY, times=times, headers={"Retry-After": str(retry_after_s)})

    def klines_requests(self, kind: str = "spot") -> list[Request]:
        path = "/api/v3/klines" if kind == "spot" else "/fapi/v1/klines"
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # ---- handlers -----------------------------------------------------------------------
    def _exchange_info(self, kind: str) -> Response:
        template = json.loads((DATA / f"binance_exchange_info_{kind}.json").read_text())
        prototype = template["symbols"][0]
        symbols = []
        for market in self.markets.values():
            entry = copy.deepcopy(prototype)
            entry.update(symbol=market.id, baseAsset=market.base, quoteAsset=market.quote)
            if kind == "usdm":
                entry.update(pair=market.id, marginAsset=market.quote, onboardDate=_ms(market.listed_at))
            symbols.append(entry)
        template["symbols"] = symbols
        template["serverTime"] = self.now_ms
        return Response.json(template)

    def _market(self, request: Request) -> Market | Response:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return _error(
                400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        market = self.markets.get(symbol)
        if market is None:
            return _error(400, -1121, "Invalid symbol.")
        return market

    def _klines(self, request: Request, max_limit: int, kind: str) -> Response:
        market = self._market(request)
        if isinstance(market, Response):
            return market
        step = INTERVAL_MS.get(request.query.get("interval", ""))
        if step is None:
            return _error(400, -1120, "Invalid interval.")
        try:
            limit = int(request.query.get("limit", 500))
            start = int(request.query["startTime"]) if "startTime" in request.query else None
            end = int(request.query["endTime"]) if "endTime" in request.query else None
        except ValueError:
            return _error(400, -1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= max_limit:
            return _error(
                400, -1130, f"Data sent for parameter 'limit' is not valid; it must be 1..{max_limit}."
            )
        first = -(-_ms(market.listed_at) // step) * step
        newest = self.now_ms // step * step  # the bar still open
        lo = max(first, -(-start // step) * step) if start is not None else first
        hi = min(newest, end // step * step) if end is not None else newest
        if hi < lo:
            return Response.json([])
        if start is None:
            lo = max(lo, hi - (limit - 1) * step)
        hi = min(hi, lo + (limit - 1) * step)
        salt = "" if kind == "spot" else ":perp"
        return Response.json([_kline(market.id + salt, t, step) for t in range(lo, hi + 1, step)])

    def _ticker(self, request: Request, kind: str) -> Response:
        market = self._market(request)
        if isinstance(market, Response):
            return market
        step = INTERVAL_MS["1m"]
        open_ms = self.now_ms // step * step
        o, h, lo, c, v = candle(market.id + ("" if kind == "spot" else ":perp"), open_ms, step)
        return Response.json(
            {
                "symbol": market.id,
                "priceChange": f"{c - o:.8f}",
                "priceChangePercent": f"{(c - o) / o * 100:.3f}",
                "weightedAvgPrice": f"{(h + lo) / 2:.8f}",
                "prevClosePrice": f"{o:.8f}",
                "lastPrice": f"{c:.8f}",
                "lastQty": "0.01000000",
                "bidPrice": f"{c - 0.01:.8f}",
                "bidQty": "1.50000000",
                "askPrice": f"{c:.8f}",
                "askQty": "2.00000000",
                "openPrice": f"{o:.8f}",
                "highPrice": f"{h:.8f}",
                "lowPrice": f"{lo:.8f}",
                "volume": f"{v:.8f}",
                "quoteVolume": f"{v * c:.8f}",
                "openTime": self.now_ms - 86_400_000,
                "closeTime": self.now_ms,
                "firstId": 1,
                "lastId": 1000,
                "count": 1000,
            }
        )


def _kline(seed: str, open_ms: int, step: int) -> list:
    o, h, lo, c, v = candle(seed, open_ms, step)
    return [
        open_ms,
        f"{o:.8f}",
        f"{h:.8f}",
        f"{lo:.8f}",
        f"{c:.8f}",
        f"{v:.8f}",
        open_ms + step - 1,
        f"{v * c:.8f}",
        42,
        f"{v / 2:.8f}",
        f"{v * c / 2:.8f}",
        "0",
    ]


def _error(status: int, code: int, msg: str) -> Response:
    return Response.json({"code": code, "msg": msg}, status)


# ---- USD-M futures trading ---------------------------------------------------------------------

_D0 = Decimal(0)


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    status: str = "NEW"
    executed: Decimal = _D0
    avg_price: Decimal = _D0
    update_ms: int = 0

    def wire(self) -> dict:
        """The order as ``/fapi/v1/order`` returns it."""
        return {
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status,
            "clientOrderId": self.client_order_id, "price": _fmt(self.price), "avgPrice": _fmt(self.avg_price),
            "origQty": _fmt(self.quantity), "executedQty": _fmt(self.executed),
            "cumQuote": _fmt(self.executed * self.avg_price), "timeInForce": self.time_in_force,
            "type": self.type, "reduceOnly": self.reduce_only, "closePosition": False, "side": self.side,
            "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "origType": self.type, "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0,
            "time": self.update_ms, "updateTime": self.update_ms,
        }


@dataclass
class FakePosition:
    quantity: Decimal = _D0  # signed
    entry_price: Decimal = _D0


@dataclass
class FuturesVenue:
    """One USD-M futures account: one-way positions, isolated margin per symbol, fees on notional.

    Market orders fill at once at the symbol's current price (taker fee); limit orders rest
    until :meth:`set_price` crosses them and then fill at their limit (maker fee). An order
    that opens or adds exposure needs ``notional / leverage + fee`` of available balance, else
    Binance's -2019 "Margin is insufficient.".
    """

    api_key: str
    secret: str
    wallet: Decimal
    prices: dict[str, Decimal]
    taker_fee: Decimal
    maker_fee: Decimal
    now_ms: int
    leverage: dict[str, int] = field(default_factory=dict)
    positions: dict[str, FakePosition] = field(default_factory=dict)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    next_id: int = 1000
    lock: threading.RLock = field(default_factory=threading.RLock)
    markets: tuple[str, ...] = ()
    lost_replies: int = 0  # order placements whose reply is replaced by a 502 (the order stands)

    def install(self, fake: FakeBinance) -> None:
        self.markets = tuple(fake.markets)
        for method, path, handler in (
            ("POST", "/fapi/v1/order", self._create),
            ("DELETE", "/fapi/v1/order", self._cancel),
            ("GET", "/fapi/v1/order", self._fetch),
            ("GET", "/fapi/v2/account", self._account),
            ("GET", "/fapi/v2/balance", self._balance),
            ("GET", "/fapi/v2/positionRisk", self._position_risk),
            ("GET", "/fapi/v1/leverageBracket", self._leverage_bracket),
            ("POST", "/fapi/v1/leverage", self._set_leverage),
        ):
            fake.route(method, path, self._signed(handler))

    # ---- steering from tests -------------------------------------------------------------
    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the market; resting limit orders the new price reaches fill at their limit."""
        with self.lock:
            self.prices[symbol] = price
            for order in list(self.orders.values()):
                if order.symbol != symbol or order.status != "NEW" or order.type != "LIMIT":
                    continue
                if (order.side == "BUY" and price <= order.price) or (order.side == "SELL" and price >= order.price):
                    self._execute(order, order.price, self.maker_fee)

    def position(self, symbol: str) -> FakePosition:
        return self.positions.setdefault(symbol, FakePosition())

    def available(self) -> Decimal:
        used = sum((abs(p.quantity) * p.entry_price / self.leverage.get(s, 20) for s, p in self.positions.items()),
                   _D0)
        return self.wallet - used

    # ---- signing -------------------------------------------------------------------------
    def _signed(self, handler):
        def serve(request: Request) -> Response:
            if request.headers.get("x-mbx-apikey") != self.api_key:
                return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            payload = request.body.decode() if request.method in ("POST", "PUT") else request.raw_query
            signed, sep, signature = payload.rpartition("&signature=")
            expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
            if not sep or not hmac.compare_digest(signature, expected):
                return _error(400, -1022, "Signature for this request is not valid.")
            params = dict(parse_qsl(signed, keep_blank_values=True))
            if "timestamp" not in params:
                return _error(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or "
                                          "malformed.")
            with self.lock:
                response = handler(params)
                if handler == self._create and self.lost_replies and response.status == 200:
                    self.lost_replies -= 1
                    return Response(502, b"Bad Gateway", {"Content-Type": "text/plain"})
                return response
        return serve

    # ---- handlers ------------------------------------------------------------------------
    def _symbol(self, params: dict) -> str | Response:
        symbol = params.get("symbol", "")
        if symbol not in self.markets:
            return _error(400, -1121, "Invalid symbol.")
        return symbol

    def _create(self, params: dict) -> Response:
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        kind, side = params.get("type", ""), params.get("side", "")
        if kind not in ("MARKET", "LIMIT") or side not in ("BUY", "SELL"):
            return _error(400, -1116, "Invalid orderType.")
        try:
            quantity = Decimal(params["quantity"])
            price = Decimal(params.get("price", "0"))
        except (KeyError, ArithmeticError):
            return _error(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        if quantity <= 0 or (kind == "LIMIT" and price <= 0):
            return _error(400, -4003, "Quantity less than or equal to zero.")
        client_id = params.get("newClientOrderId") or f"fake-{self.next_id}"
        if any(o.client_order_id == client_id for o in self.orders.values()):
            return _error(400, -4116, "ClientOrderId is duplicated.")
        reduce_only = params.get("reduceOnly") == "true"
        mark = self.prices[symbol]
        fee_rate = self.taker_fee if kind == "MARKET" else self.maker_fee
        pos = self.position(symbol)
        signed_qty = quantity if side == "BUY" else -quantity
        closing = min(quantity, abs(pos.quantity)) if pos.quantity * signed_qty < 0 else _D0
        if reduce_only and closing < quantity:
            return _error(400, -2022, "ReduceOnly Order is rejected.")
        opening = quantity - closing
        at = price if kind == "LIMIT" else mark
        needed = opening * at / self.leverage.get(symbol, 20) + quantity * at * fee_rate
        if opening and needed > self.available():
            return _error(400, -2019, "Margin is insufficient.")
        self.next_id += 1
        order = FakeOrder(self.next_id, client_id, symbol, side, kind, quantity, price,
                          params.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC", reduce_only,
                          update_ms=self.now_ms)
        self.orders[order.order_id] = order
        if kind == "MARKET":
            self._execute(order, mark, self.taker_fee)
        elif (side == "BUY" and mark <= price) or (side == "SELL" and mark >= price):
            self._execute(order, mark, self.taker_fee)  # a marketable limit takes liquidity
        return Response.json(order.wire())

    def _execute(self, order: FakeOrder, price: Decimal, fee_rate: Decimal) -> None:
        pos = self.position(order.symbol)
        signed_qty = order.quantity if order.side == "BUY" else -order.quantity
        if pos.quantity * signed_qty < 0:
            closed = min(abs(signed_qty), abs(pos.quantity))
            sign = 1 if pos.quantity > 0 else -1
            self.wallet += (price - pos.entry_price) * closed * sign
            rest = pos.quantity + signed_qty
            if rest * pos.quantity < 0:  # flipped: the remainder opens at this price
                pos.entry_price = price
            elif rest == 0:
                pos.entry_price = _D0
            pos.quantity = rest
        else:
            total = abs(pos.quantity) + order.quantity
            pos.entry_price = (abs(pos.quantity) * pos.entry_price + order.quantity * price) / total
            pos.quantity += signed_qty
        self.wallet -= order.quantity * price * fee_rate
        order.status, order.executed, order.avg_price, order.update_ms = "FILLED", order.quantity, price, self.now_ms

    def _find(self, params: dict) -> FakeOrder | None:
        if "orderId" in params:
            return self.orders.get(int(params["orderId"]))
        client_id = params.get("origClientOrderId")
        return next((o for o in self.orders.values() if o.client_order_id == client_id), None)

    def _cancel(self, params: dict) -> Response:
        order = self._find(params)
        if order is None or order.status != "NEW":
            return _error(400, -2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", self.now_ms
        return Response.json(order.wire())

    def _fetch(self, params: dict) -> Response:
        order = self._find(params)
        if order is None:
            return _error(400, -2013, "Order does not exist.")
        return Response.json(order.wire())

    def _asset(self) -> dict:
        unrealized = sum(((self.prices.get(s, p.entry_price) - p.entry_price) * p.quantity
                          for s, p in self.positions.items()), _D0)
        margin = self.wallet - self.available()
        return {
            "asset": "USDT", "walletBalance": _fmt(self.wallet), "unrealizedProfit": _fmt(unrealized),
            "marginBalance": _fmt(self.wallet + unrealized), "maintMargin": "0", "initialMargin": _fmt(margin),
            "positionInitialMargin": _fmt(margin), "openOrderInitialMargin": "0",
            "crossWalletBalance": _fmt(self.wallet), "crossUnPnl": _fmt(unrealized),
            "availableBalance": _fmt(self.available()), "maxWithdrawAmount": _fmt(self.available()),
            "marginAvailable": True, "updateTime": self.now_ms,
        }

    def _account(self, params: dict) -> Response:
        asset = self._asset()
        return Response.json({
            "feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
            "multiAssetsMargin": False, "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": "0",
            "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["initialMargin"],
            "totalOpenOrderInitialMargin": "0", "totalCrossWalletBalance": asset["walletBalance"],
            "totalCrossUnPnl": asset["unrealizedProfit"], "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"], "assets": [asset], "positions": [],
        })

    def _balance(self, params: dict) -> Response:
        asset = self._asset()
        return Response.json([{
            "accountAlias": "SgsR", "asset": "USDT", "balance": asset["walletBalance"],
            "crossWalletBalance": asset["walletBalance"], "crossUnPnl": asset["unrealizedProfit"],
            "availableBalance": asset["availableBalance"], "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "marginAvailable": True, "updateTime": self.now_ms,
        }])

    def _position_risk(self, params: dict) -> Response:
        rows = []
        for symbol in self.markets:
            if params.get("symbol") and params["symbol"] != symbol:
                continue
            pos = self.positions.get(symbol, FakePosition())
            mark = self.prices.get(symbol, pos.entry_price)
            lev = self.leverage.get(symbol, 20)
            rows.append({
                "symbol": symbol, "positionAmt": _fmt(pos.quantity), "entryPrice": _fmt(pos.entry_price),
                "breakEvenPrice": _fmt(pos.entry_price), "markPrice": _fmt(mark),
                "unRealizedProfit": _fmt((mark - pos.entry_price) * pos.quantity), "liquidationPrice": "0",
                "leverage": str(lev), "maxNotionalValue": "1000000", "marginType": "isolated",
                "isolatedMargin": _fmt(abs(pos.quantity) * pos.entry_price / lev), "isAutoAddMargin": "false",
                "positionSide": "BOTH", "notional": _fmt(pos.quantity * mark), "isolatedWallet": "0",
                "updateTime": self.now_ms,
            })
        return Response.json(rows)

    def _leverage_bracket(self, params: dict) -> Response:
        return Response.json([{"symbol": s, "brackets": [{
            "bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
            "maintMarginRatio": 0.004, "cum": 0.0}]} for s in self.markets])

    def _set_leverage(self, params: dict) -> Response:
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        try:
            lev = int(params.get("leverage", ""))
        except ValueError:
            lev = 0
        if not 1 <= lev <= 125:
            return _error(400, -4028, f"Leverage {params.get('leverage')} is not valid")
        self.leverage[symbol] = lev
        return Response.json({"leverage": lev, "maxNotionalValue": "1000000", "symbol": symbol})
