"""Fake Yahoo Finance: the chart API (``/v8/finance/chart/{symbol}``) and search (``/v1/finance/search``).

Chart answers follow Yahoo's JSON: ``chart.result[0]`` with ``meta``, ``timestamp`` (epoch
seconds) and ``indicators.quote[0]`` arrays holding ``null`` for bars without trades, or
``chart.error`` with HTTP 404 (unknown symbol) / 422 (bad interval, range too long or too
old). It mimics Yahoo's quirks that matter to a client: bars exist only in NSE sessions
(09:15-15:30 IST, Monday-Friday; intraday bars aligned to the session open); the bar still
in progress is served with the current time as its timestamp; today's daily bar carries
the last trade time instead of the session open; 1m requests may span at most 8 days and
start within 30 days, other intraday intervals within 60 (1h: 730) days.
"""

from __future__ import annotations

import copy
import json
import zlib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fakes.candles import candle
from fakes.server import FakeServer, Request, Response

DATA = Path(__file__).parent / "data"
IST = ZoneInfo("Asia/Kolkata")
INTERVAL_S = {
    "1m": 60,
    "2m": 120,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "60m": 3600,
    "1h": 3600,
    "90m": 5400,
    "1d": 86400,
}
VALID = "[1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d, 5d, 1wk, 1mo, 3mo]"
WINDOW_DAYS = {"1m": 30, "2m": 60, "5m": 60, "15m": 60, "30m": 60, "90m": 60, "60m": 730, "1h": 730}
LISTED = date(2020, 1, 1)
CHART = "/v8/finance/chart/"


def chart_error(status: int, code: str, description: str) -> Response:
    return Response.json(
        {"chart": {"result": None, "error": {"code": code, "description": description}}}, status
    )


class FakeYahoo(FakeServer):
    """Yahoo chart and search for NSE/BSE ``symbols`` (e.g. ``RELIANCE.NS``) at the fixed instant ``now``."""

    def __init__(self, now: datetime, symbols: tuple[str, ...] = ("RELIANCE.NS", "TCS.NS", "RELIANCE.BO")):
        super().__init__()
        self.now_s = int(now.timestamp())
        self.symbols = set(symbols)
        self.holidays: set[date] = set()
        self._meta = json.loads((DATA / "yahoo_chart_meta.json").read_text())
        self._quotes = json.loads((DATA / "yahoo_search_quotes.json").read_text())
        self.route_prefix("GET", CHART, self._chart)
        self.route("GET", "/v1/finance/search", self._search)

    def chart_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(CHART)]

    def is_null_bar(self, symbol: str, open_s: int) -> bool:
        """Bars Yahoo sends as nulls (no trades): a deterministic one in about 40."""
        return zlib.crc32(f"{symbol}{open_s}".encode()) % 41 == 0

    # ---- handlers -----------------------------------------------------------------------
    def _chart(self, request: Request) -> Response:
        symbol = request.path[len(CHART) :]
        if symbol not in self.symbols:
            return chart_error(404, "Not Found", "No data found, symbol may be delisted")
        interval = request.query.get("interval", "1d")
        step = INTERVAL_S.get(interval)
        if step is None:
            return chart_error(
                422,
                "Unprocessable Entity",
                f"Invalid input - interval={interval} is not supported. Valid intervals: {VALID}",
            )
        try:
            period1, period2 = int(request.query["period1"]), int(request.query["period2"])
        except (KeyError, ValueError):
            return chart_error(400, "Bad Request", "Invalid input - period1 and period2 are required")
        if interval == "1m" and period2 - period1 > 8 * 86400:
            return chart_error(
                422,
                "Unprocessable Entity",
                "Only 8 days worth of 1m granularity data are allowed to be fetched per request.",
            )
        window = WINDOW_DAYS.get(interval)
        if window and period1 < self.now_s - window * 86400:
            return chart_error(
                422,
                "Unprocessable Entity",
                f"{interval} data not available for startTime={period1} and endTime={period2}. "
                f"The requested range must be within the last {window} days.",
            )
        stamps, rows = self._bars(symbol, step, period1, period2)
        meta = copy.deepcopy(self._meta)
        meta.update(
            symbol=symbol,
            dataGranularity=interval,
            regularMarketTime=min(self.now_s, stamps[-1] if stamps else self.now_s),
        )
        if symbol.endswith(".BO"):
            meta.update(exchangeName="BSE", fullExchangeName="BSE")
        if not stamps:
            result = {"meta": meta, "indicators": {"quote": [{}]}}
        else:
            quote = {
                name: [r[i] for r in rows]
                for i, name in enumerate(("open", "high", "low", "close", "volume"))
            }
            result = {"meta": meta, "timestamp": stamps, "indicators": {"quote": [quote]}}
            if step == 86400:
                result["indicators"]["adjclose"] = [{"adjclose": quote["close"]}]
        return Response.json({"chart": {"result": [result], "error": None}})

    def _bars(self, symbol: str, step: int, period1: int, period2: int) -> tuple[list[int], list[list]]:
        stamps: list[int] = []
        rows: list[list] = []
        day = max(datetime.fromtimestamp(period1, IST).date(), LISTED)
        last = datetime.fromtimestamp(min(period2, self.now_s), IST).date()
        while day <= last:
            if day.weekday() < 5 and day not in self.holidays:
                opens = int(datetime.combine(day, time(9, 15), IST).timestamp())
                closes = int(datetime.combine(day, time(15, 30), IST).timestamp())
                starts = [opens] if step == 86400 else range(opens, closes, step)
                for t in starts:
                    if not period1 <= t < period2 or t > self.now_s:
                        continue
                    bar_close = closes if step == 86400 else min(t + step, closes)
                    in_progress = self.now_s < bar_close
                    stamp = (
                        min(self.now_s, closes - 1) if in_progress or (step == 86400 and day == last) else t
                    )
                    if self.is_null_bar(symbol, t):
                        rows.append([None] * 5)
                    else:
                        o, h, lo, c, v = candle(symbol, t * 1000, step * 1000)
                        rows.append([o, h, lo, c, int(v * 1000)])
                    stamps.append(stamp)
            day += timedelta(days=1)
        return stamps, rows

    def _search(self, request: Request) -> Response:
        needle = request.query.get("q", "").strip().upper()
        count = int(request.query.get("quotesCount", 7))
        quotes = [
            q
            for q in self._quotes
            if needle
            and (
                needle in q["symbol"].upper()
                or needle in q.get("shortname", "").upper()
                or needle in q.get("longname", "").upper()
            )
        ][:count]
        return Response.json(
            {
                "explains": [],
                "count": len(quotes),
                "quotes": quotes,
                "news": [],
                "nav": [],
                "lists": [],
                "researchReports": [],
                "screenerFieldResults": [],
                "totalTime": 21,
                "timeTakenForQuotes": 418,
                "timeTakenForNews": 0,
                "timeTakenForAlgowatchlist": 400,
                "timeTakenForPredefinedScreener": 400,
                "timeTakenForCrunchbase": 0,
                "timeTakenForNav": 400,
                "timeTakenForResearchReports": 0,
                "timeTakenForScreenerField": 0,
                "timeTakenForCulturalAssets": 0,
            }
        )
