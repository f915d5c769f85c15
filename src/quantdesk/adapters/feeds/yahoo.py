"""Stock history from Yahoo Finance's public chart JSON API, over httpx (no yfinance).

``YahooFeed`` reads ``/v8/finance/chart/{symbol}?period1=&period2=&interval=`` (epoch
seconds) and ``/v1/finance/search?q=``. NSE instruments are ``RELIANCE.NS``, BSE
``RELIANCE.BO``, crypto ``BTC-USD``; a few indices map through ``symbol_overrides``
(``NSE:NIFTY`` is ``^NSEI``).

Yahoo quirks handled here: bars without trades arrive as ``null`` and are skipped; today's
daily bar carries the last trade time and the bar in progress the current time, so daily
bars are keyed at the session open of their local date and intraday bars floored onto the
session's bar grid; the bar still open at the clock's now is dropped (a bar closes at
``open + timeframe`` cut at the session close, so today's daily bar counts once NSE has
closed). Yahoo allows at most 8 days of 1m bars per request, so 1m ranges are fetched in
7-day pages. There are no 4h bars at Yahoo: asking for them is InvalidInputError.

Errors: unknown symbol (HTTP 404) is NotFoundError; Yahoo's 400/422 (e.g. 1m data older
than 30 days) is InvalidInputError with Yahoo's reason; 429, 5xx, network failures and
malformed JSON are retried with exponential backoff (honouring ``Retry-After``) and then
raise UpstreamUnavailableError.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from quantdesk.adapters.wire import MalformedResponseError as _MalformedResponseError
from quantdesk.adapters.wire import check_range as _check_range
from quantdesk.adapters.wire import clip as _clip
from quantdesk.adapters.wire import offered_interval, wall_clock
from quantdesk.adapters.wire import retry_after_seconds as _retry_after
from quantdesk.adapters.wire import rows_frame as _frame
from quantdesk.adapters.wire import session_open_at as _open_at
from quantdesk.core.clock import Clock
from quantdesk.core.errors import ConfigError, InvalidInputError, NotFoundError, UpstreamUnavailableError
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import SessionRules, bar_close_at, crypto_rules, nse_rules
from quantdesk.services.ports import BAR_COLUMNS

DEFAULT_BASE_URL = "https://query1.finance.yahoo.com"
# Yahoo answers 429 to requests without a browser-like User-Agent.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
INTERVALS = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.M30: "30m",
    Timeframe.H1: "60m",
    Timeframe.D1: "1d",
}
MAX_SPAN = {Timeframe.M1: timedelta(days=7)}  # Yahoo: "Only 8 days worth of 1m granularity data"
SYMBOL_OVERRIDES = {
    "NSE:NIFTY": "^NSEI",
    "NSE:NIFTY50": "^NSEI",
    "NSE:BANKNIFTY": "^NSEBANK",
    "BSE:SENSEX": "^BSESN",
}
_SUFFIX = {Venue.NSE: ".NS", Venue.BSE: ".BO"}






class YahooFeed:
    """History provider over Yahoo Finance charts (``name = "yahoo"``); closes its client on ``close()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        name: str = "yahoo",
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sessions: Mapping[Venue, SessionRules] | None = None,
        symbol_overrides: Mapping[str, str] | None = None,
        user_agent: str = USER_AGENT,
        now: Clock | Callable[[], datetime] = wall_clock,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if max_attempts < 1:
            raise ConfigError(f"max_attempts {max_attempts} must be at least 1")
        self.name = name
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sessions = dict(
            sessions or {Venue.NSE: nse_rules(), Venue.BSE: nse_rules(), Venue.CRYPTO: crypto_rules()}
        )
        self.symbol_overrides = dict(SYMBOL_OVERRIDES if symbol_overrides is None else symbol_overrides)
        self._by_yahoo: dict[str, str] = {}  # the first key naming a Yahoo symbol wins (^NSEI -> NSE:NIFTY)
        for key, yahoo_symbol in self.symbol_overrides.items():
            self._by_yahoo.setdefault(yahoo_symbol, key)
        self._now = now.now if isinstance(now, Clock) else now
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> YahooFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HistoryProvider -------------------------------------------------------------
    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Closed bars opening in ``[start, end)``; see the module notes for errors raised."""
        tf = Timeframe(timeframe)
        interval = offered_interval(tf, INTERVALS, "Yahoo")
        _check_range(start, end)
        symbol = self.symbol_for(instrument)
        rules = self._rules(instrument)
        now = self._now()
        upper = min(end, now)
        rows: list[tuple[datetime, float, float, float, float, float]] = []
        cursor = start
        while cursor < upper:
            stop = min(upper, cursor + MAX_SPAN[tf]) if tf in MAX_SPAN else upper
            payload = self._get_json(
                f"/v8/finance/chart/{quote(symbol, safe='')}",
                {
                    "period1": math.floor(cursor.timestamp()),
                    "period2": math.ceil(stop.timestamp()),
                    "interval": interval,
                    "includePrePost": "false",
                    "events": "",
                },
                what=f"chart {symbol} {interval}",
                symbol=symbol,
            )
            for stamp, values in _chart_rows(payload):
                open_at = _open_at(stamp, tf, rules)
                if start <= open_at < end and bar_close_at(rules, tf, open_at) <= now:
                    rows.append((open_at, *values))
            cursor = stop
        return _frame(rows)

    def search(self, q: str) -> list[Instrument]:
        """NSE/BSE stocks, mapped indices and crypto pairs Yahoo's search finds for ``q``.

        Quotes on venues quantdesk does not model (NASDAQ, LSE, ...) are left out.
        """
        text = (q or "").strip()
        if not text:
            return []
        payload = self._get_json(
            "/v1/finance/search",
            {"q": text, "quotesCount": 20, "newsCount": 0, "listsCount": 0, "enableFuzzyQuery": "false"},
            what=f"search {text!r}",
            symbol=text,
        )
        quotes = payload.get("quotes") if isinstance(payload, dict) else None
        if not isinstance(quotes, list):
            raise UpstreamUnavailableError(f"Yahoo search for {text!r} returned no quotes list")
        found = (self._instrument(item) for item in quotes if isinstance(item, dict))
        return [i for i in found if i is not None]

    # ---- symbols -----------------------------------------------------------------------
    def symbol_for(self, instrument: Instrument) -> str:
        """Yahoo's ticker: ``RELIANCE.NS``, ``RELIANCE.BO``, ``BTC-USD``, or an override such as ``^NSEI``."""
        iid = instrument.id
        override = self.symbol_overrides.get(iid.key)
        if override:
            return override
        if iid.venue == Venue.CRYPTO and iid.quote:
            return f"{iid.base}-{iid.quote}"
        suffix = _SUFFIX.get(iid.venue)
        if suffix is None:
            raise InvalidInputError(f"symbol {iid.key} has no Yahoo ticker", field="symbol")
        return f"{iid.base}{suffix}"

    def _instrument(self, item: dict[str, Any]) -> Instrument | None:
        symbol = str(item.get("symbol") or "")
        name = str(item.get("longname") or item.get("shortname") or symbol)
        kind_text = str(item.get("quoteType") or "").upper()
        if symbol in self._by_yahoo:
            venue_text, _, base = self._by_yahoo[symbol].partition(":")
            return _equity(InstrumentId(Venue(venue_text), base), name, InstrumentKind.INDEX, None)
        if kind_text == "CRYPTOCURRENCY" and "-" in symbol:
            base, _, quote_asset = symbol.partition("-")
            return Instrument(
                InstrumentId(Venue.CRYPTO, base, quote_asset),
                InstrumentKind.SPOT,
                name,
                quote_asset,
                Decimal("0.01"),
                Decimal("0.000001"),
            )
        if kind_text != "EQUITY":
            return None
        for venue, suffix in _SUFFIX.items():
            if symbol.endswith(suffix) and len(symbol) > len(suffix):
                return _equity(
                    InstrumentId(venue, symbol[: -len(suffix)]),
                    name,
                    InstrumentKind.EQUITY,
                    item.get("sector"),
                )
        return None

    def _rules(self, instrument: Instrument) -> SessionRules:
        rules = self.sessions.get(instrument.id.venue)
        if rules is None:
            raise InvalidInputError(
                f"no session rules for venue {instrument.id.venue.value}",
                field="venue",
                code="UNSUPPORTED_VENUE",
            )
        return rules

    # ---- HTTP --------------------------------------------------------------------------
    def _get_json(self, path: str, params: dict[str, Any], *, what: str, symbol: str) -> Any:
        """GET ``path`` and decode JSON, retrying transient failures; translate errors into ours."""
        delay = self.backoff_s
        failure = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = 0.0
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
                failure = f"{type(exc).__name__}: {_clip(exc) or 'network error'}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    failure = f"HTTP {status} {_clip(response.text, 120)!r}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                elif status == 404:
                    reason = _chart_reason(response) or "not found"
                    raise NotFoundError("symbol", symbol, message=f"Yahoo has no symbol {symbol}: {reason}")
                elif status in (400, 422):
                    reason = _chart_reason(response) or _clip(response.text)
                    raise InvalidInputError(f"Yahoo refused {what}: {reason}", code="UPSTREAM_REFUSED")
                elif status >= 400:
                    raise UpstreamUnavailableError(
                        f"Yahoo refused {what} with HTTP {status}: {_clip(response.text, 120)!r}",
                        details={"provider": "yahoo", "status": status},
                    )
                else:
                    try:
                        return _decode(response)
                    except _MalformedResponseError as exc:
                        failure = str(exc)
            if attempt < self.max_attempts:
                self._sleep(min(max(delay, retry_after), self.max_backoff_s))
                delay *= 2
        raise UpstreamUnavailableError(
            f"Yahoo {what} failed after {self.max_attempts} attempts: {failure}",
            details={"provider": "yahoo", "call": what, "attempts": self.max_attempts},
        )


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _MalformedResponseError(f"malformed JSON: {_clip(response.text, 80)!r}") from None


def _chart_reason(response: httpx.Response) -> str | None:
    try:
        error = response.json()["chart"]["error"]
        return str(error.get("description") or error.get("code"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _chart_rows(payload: Any) -> list[tuple[int, tuple[float, float, float, float, float]]]:
    """(epoch s, (o, h, l, c, v)) of every bar with prices; null bars are skipped, null volume is 0."""
    try:
        chart = payload["chart"]
        if chart.get("error"):
            raise UpstreamUnavailableError(f"Yahoo chart error: {_clip(chart['error'])}")
        results = chart.get("result") or []
        if not results:
            return []
        result = results[0]
        stamps = result.get("timestamp") or []
        columns = (result.get("indicators") or {}).get("quote") or [{}]
        series = [columns[0].get(k) or [] for k in BAR_COLUMNS]
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UpstreamUnavailableError(f"Yahoo chart reply has an unexpected shape: {_clip(exc)}") from exc
    if stamps and any(len(s) != len(stamps) for s in series):
        raise UpstreamUnavailableError(
            "Yahoo chart reply has quote arrays of different lengths than its timestamps"
        )
    rows = []
    for i, stamp in enumerate(stamps):
        o, h, lo, c, v = (s[i] for s in series)
        if o is None or h is None or lo is None or c is None:
            continue
        rows.append((int(stamp), (float(o), float(h), float(lo), float(c), float(v or 0))))
    return rows




def _equity(iid: InstrumentId, name: str, kind: InstrumentKind, sector: object) -> Instrument:
    return Instrument(
        iid, kind, name, "INR", Decimal("0.05"), Decimal(1), sector=str(sector) if sector else None
    )








