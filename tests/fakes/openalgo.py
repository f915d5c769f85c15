"""Fake OpenAlgo server (REST API v1): history, search, ping and funds, keyed by one API key.

Every call is ``POST`` with a JSON body holding ``apikey``; a wrong key gets HTTP 403
``{"status": "error", "message": "Invalid openalgo apikey"}``. ``/api/v1/history`` serves
NSE-session bars (09:15-15:30 IST, Monday-Friday) between the inclusive IST dates
``start_date`` and ``end_date``: intraday bars stamped at their open, daily bars at 00:00 IST
(as Zerodha-backed servers do), the bar in progress at ``now`` included. Like brokers, it
refuses a request spanning more than ``max_days`` days for the interval.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fakes.candles import candle
from fakes.server import FakeServer, Request, Response

DATA = Path(__file__).parent / "data"
IST = ZoneInfo("Asia/Kolkata")
INTERVAL_MIN = {"1m": 1, "3m": 3, "5m": 5, "10m": 10, "15m": 15, "30m": 30, "1h": 60, "D": 0}
MAX_DAYS = {"1m": 30, "3m": 90, "5m": 90, "10m": 90, "15m": 180, "30m": 180, "1h": 365, "D": 2000}


def error(status: int, message: object) -> Response:
    return Response.json({"status": "error", "message": message}, status)


class FakeOpenAlgo(FakeServer):
    """OpenAlgo in front of a broker whose master contract lists ``data/openalgo_search_symbols.json``."""

    def __init__(
        self, now: datetime, api_key: str = "test-key", *, broker: str = "zerodha", with_ping: bool = True
    ):
        super().__init__()
        self.now = now
        self.api_key = api_key
        self.broker = broker
        self.symbols = json.loads((DATA / "openalgo_search_symbols.json").read_text())
        self._known = {(s["exchange"], s["symbol"]) for s in self.symbols}
        self.route("POST", "/api/v1/history", self._guarded(self._history))
        self.route("POST", "/api/v1/search", self._guarded(self._search))
        self.route("POST", "/api/v1/funds", self._guarded(self._funds))
        if with_ping:
            self.route("POST", "/api/v1/ping", self._guarded(self._ping))

    def history_requests(self) -> list[dict]:
        with self._lock:
            return [r.json() for r in self.requests if r.path == "/api/v1/history"]

    def _guarded(self, handler):
        def serve(request: Request) -> Response:
            try:
                body = request.json()
            except ValueError:
                return error(400, "Invalid JSON body")
            if not isinstance(body, dict) or body.get("apikey") != self.api_key:
                return error(403, "Invalid openalgo apikey")
            return handler(body)

        return serve

    def _ping(self, body: dict) -> Response:
        return Response.json({"status": "success", "data": {"broker": self.broker, "message": "pong"}})

    def _funds(self, body: dict) -> Response:
        return Response.json(
            {
                "status": "success",
                "data": {
                    "availablecash": "100000.00",
                    "collateral": "0.00",
                    "m2mrealized": "0.00",
                    "m2munrealized": "0.00",
                    "utiliseddebits": "0.00",
                },
            }
        )

    def _search(self, body: dict) -> Response:
        query = str(body.get("query") or "").upper()
        if not query:
            return error(400, {"query": ["Missing data for required field."]})
        exchange = body.get("exchange")
        found = [
            s
            for s in self.symbols
            if (query in s["symbol"].upper() or query in s["name"].upper())
            and (not exchange or s["exchange"] == exchange)
        ]
        return Response.json(
            {"status": "success", "message": f"Found {len(found)} matching symbols", "data": found}
        )

    def _history(self, body: dict) -> Response:
        interval = body.get("interval")
        if interval not in INTERVAL_MIN:
            return error(
                400, f"Invalid interval '{interval}'. Supported intervals: {', '.join(INTERVAL_MIN)}"
            )
        symbol, exchange = body.get("symbol"), body.get("exchange")
        if (exchange, symbol) not in self._known:
            return error(400, f"Symbol '{symbol}' not found for exchange '{exchange}'")
        try:
            first, last = date.fromisoformat(body["start_date"]), date.fromisoformat(body["end_date"])
        except (KeyError, TypeError, ValueError):
            return error(400, {"start_date": ["Not a valid date (YYYY-MM-DD)."]})
        if (last - first).days + 1 > MAX_DAYS[interval]:
            return error(
                400,
                f"Requested {(last - first).days + 1} days of {interval} data; the broker allows "
                f"at most {MAX_DAYS[interval]} days per request",
            )
        seed = f"{exchange}:{symbol}"
        minutes = INTERVAL_MIN[interval]
        data = []
        day = first
        while day <= last:
            opens = datetime.combine(day, time(9, 15), IST)
            closes = datetime.combine(day, time(15, 30), IST)
            if day.weekday() < 5 and opens <= self.now:
                if minutes == 0:
                    bars = [(datetime.combine(day, time(0, 0), IST), opens, closes - opens)]
                else:
                    step = timedelta(minutes=minutes)
                    bars = []
                    at = opens
                    while at < closes and at <= self.now:
                        bars.append((at, at, step))
                        at += step
                for stamp, open_at, length in bars:
                    o, h, lo, c, v = candle(
                        seed, int(open_at.timestamp() * 1000), int(length.total_seconds() * 1000)
                    )
                    data.append(
                        {
                            "timestamp": int(stamp.timestamp()),
                            "open": o,
                            "high": h,
                            "low": lo,
                            "close": c,
                            "volume": int(v * 100),
                            "oi": 0,
                        }
                    )
            day += timedelta(days=1)
        return Response.json({"status": "success", "data": data})
