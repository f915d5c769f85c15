"""Fake Binance REST API (spot ``/api/v3`` and USD-M futures ``/fapi/v1``), enough for ccxt.

Serves what ``ccxt.binance`` calls for ``load_markets`` (both ``exchangeInfo`` documents, in
the shape of the captured payloads in ``data/``), ``fetch_ohlcv`` (``klines`` with
``symbol interval startTime endTime limit``: bars opening at or after ``startTime`` and at
or before ``endTime``, oldest first, at most ``limit``; only ``endTime`` gives the newest
``limit`` bars before it) and ``fetch_ticker`` (``ticker/24hr``). Like the real venue, the
newest kline is the one still open at ``now_ms``. Errors use Binance's ``{"code","msg"}``
bodies with its status codes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
