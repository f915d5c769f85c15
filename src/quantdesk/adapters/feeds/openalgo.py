"""Indian brokers' history and symbol search through an OpenAlgo server (REST API v1, httpx).

Calls (all ``POST`` with a JSON body carrying ``apikey``):

* ``/api/v1/history`` ``{symbol, exchange, interval, start_date, end_date}`` with intervals
  ``1m 5m 15m 30m 1h D`` and inclusive ``YYYY-MM-DD`` dates in IST; the reply's ``data`` is a
  list of ``{timestamp (epoch s), open, high, low, close, volume}``.
* ``/api/v1/search`` ``{query, exchange?}``: ``data`` lists ``{symbol, name, exchange,
  instrumenttype, lotsize, tick_size, ...}``.
* ``/api/v1/ping`` (``/api/v1/funds`` on servers without it) for :meth:`OpenAlgoFeed.ping`.

Brokers cap the span of one history request, so ranges are fetched in pages of at most
``max_days`` calendar days per timeframe. Daily bars are keyed at the session open of their
IST date whatever time the broker stamps them with (often 00:00 IST); intraday bars are
floored onto the session grid; the bar still open at the clock's now is dropped.

Errors: unknown symbol is NotFoundError, other refusals InvalidInputError with OpenAlgo's
message, a rejected API key UpstreamUnavailableError coded ``UPSTREAM_AUTH_FAILED``;
429, 5xx, network failures and malformed JSON are retried with exponential backoff and
then raise UpstreamUnavailableError. The API key never appears in messages or reprs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pandas as pd
from pydantic import SecretStr

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
from quantdesk.core.sessions import SessionRules, bar_close_at, nse_rules
from quantdesk.services.ports import BAR_COLUMNS

log = logging.getLogger(__name__)

INTERVALS = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.M30: "30m",
    Timeframe.H1: "1h",
    Timeframe.D1: "D",
}
# Calendar days per history request; within what common brokers (Zerodha, Angel, Upstox) allow.
MAX_DAYS = {
    Timeframe.M1: 30,
    Timeframe.M5: 90,
    Timeframe.M15: 180,
    Timeframe.M30: 180,
    Timeframe.H1: 365,
    Timeframe.D1: 2000,
}
# OpenAlgo exchange codes for our venues; indices have their own segment.
EXCHANGES = {Venue.NSE: "NSE", Venue.BSE: "BSE"}
INDEX_EXCHANGES = {Venue.NSE: "NSE_INDEX", Venue.BSE: "BSE_INDEX"}
_VENUES = {"NSE": Venue.NSE, "BSE": Venue.BSE, "NSE_INDEX": Venue.NSE, "BSE_INDEX": Venue.BSE}
_EQUITY_TYPES = {"", "EQ", "BE", "EQUITY"}






class OpenAlgoFeed:
    """History provider over an OpenAlgo server (``name = "openalgo"``); closes its client on ``close()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        name: str = "openalgo",
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_days: Mapping[Timeframe, int] | None = None,
        rules: SessionRules | None = None,
        now: Clock | Callable[[], datetime] = wall_clock,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"OpenAlgo URL {base_url!r} must start with http:// or https://")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts {max_attempts} must be at least 1")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_days = {**MAX_DAYS, **dict(max_days or {})}
        self.rules = rules or nse_rules()
        self._now = now.now if isinstance(now, Clock) else now
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s), headers={"Accept": "application/json"}
        )

    def __repr__(self) -> str:
        return f"OpenAlgoFeed(base_url={self.base_url!r}, api_key=**********)"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAlgoFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HistoryProvider -------------------------------------------------------------
    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Closed bars opening in ``[start, end)``, in pages of ``max_days``; see the module notes for errors."""
        tf = Timeframe(timeframe)
        interval = offered_interval(tf, INTERVALS, "OpenAlgo")
        _check_range(start, end)
        exchange = self.exchange_for(instrument)
        now = self._now()
        upper = min(end, now)
        if upper <= start:
            return _frame([])
        tz = self.rules.tz
        first_day = start.astimezone(tz).date()
        last_day = (upper - timedelta(microseconds=1)).astimezone(tz).date()
        span = timedelta(days=max(self.max_days.get(tf, 30), 1))
        rows: list[tuple[datetime, float, float, float, float, float]] = []
        day = first_day
        while day <= last_day:
            page_end = min(last_day, day + span - timedelta(days=1))
            reply = self._post(
                "/api/v1/history",
                {
                    "symbol": instrument.id.base,
                    "exchange": exchange,
                    "interval": interval,
                    "start_date": day.isoformat(),
                    "end_date": page_end.isoformat(),
                },
                what=f"history {exchange}:{instrument.id.base} {interval}",
                symbol=instrument.id.base,
            )
            for stamp, values in _history_rows(reply):
                open_at = _open_at(stamp, tf, self.rules)
                if start <= open_at < end and bar_close_at(self.rules, tf, open_at) <= now:
                    rows.append((open_at, *values))
            day = page_end + timedelta(days=1)
        return _frame(rows)

    def search(self, q: str, exchange: str | None = None) -> list[Instrument]:
        """Cash-market stocks and indices the broker's master contract lists for ``q``.

        ``exchange`` (``NSE``, ``BSE``, ...) narrows the search; derivatives are left out.
        """
        text = (q or "").strip()
        if not text:
            return []
        body: dict[str, Any] = {"query": text}
        if exchange:
            body["exchange"] = exchange.upper()
        reply = self._post("/api/v1/search", body, what=f"search {text!r}", symbol=text)
        items = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(items, list):
            raise UpstreamUnavailableError(f"OpenAlgo search for {text!r} returned no data list")
        found = (_instrument(item) for item in items if isinstance(item, dict))
        return [i for i in found if i is not None]

    def exchange_for(self, instrument: Instrument) -> str:
        """OpenAlgo's exchange code: ``NSE``/``BSE`` for stocks, ``NSE_INDEX``/``BSE_INDEX`` for indices."""
        table = INDEX_EXCHANGES if instrument.kind == InstrumentKind.INDEX else EXCHANGES
        exchange = table.get(instrument.id.venue)
        if exchange is None:
            raise InvalidInputError(
                f"symbol {instrument.id.key} is not on an Indian exchange; OpenAlgo quotes NSE and BSE",
                field="symbol",
            )
        return exchange

    # ---- connection test -------------------------------------------------------------
    def ping(self) -> tuple[bool, str]:
        """Make one real request to the server; return (connected, reason). Never raises.

        Uses ``/api/v1/ping`` and falls back to ``/api/v1/funds`` on servers that lack it.
        """
        try:
            for path in ("/api/v1/ping", "/api/v1/funds"):
                response = self._client.post(path, json={"apikey": self._api_key.get_secret_value()})
                if response.status_code == 404 and path == "/api/v1/ping":
                    continue
                return self._ping_verdict(response)
            return False, f"OpenAlgo at {self.base_url} has neither /api/v1/ping nor /api/v1/funds"
        except httpx.TimeoutException:
            return False, f"OpenAlgo at {self.base_url} did not answer within {self.timeout_s:g} s (timeout)"
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else _clip(exc) or "cannot connect"
            return False, f"cannot connect to OpenAlgo at {self.base_url}: {reason}"
        except httpx.HTTPError as exc:
            return False, f"request to OpenAlgo at {self.base_url} failed: {type(exc).__name__}: {_clip(exc)}"
        except Exception as exc:  # the connection test must answer, whatever happens
            log.exception("OpenAlgo connection test to %s failed unexpectedly", self.base_url)
            return False, f"connection test to OpenAlgo at {self.base_url} failed: {type(exc).__name__}"

    def _ping_verdict(self, response: httpx.Response) -> tuple[bool, str]:
        try:
            reply = response.json()
        except ValueError:
            return (
                False,
                f"OpenAlgo at {self.base_url} answered HTTP {response.status_code} with a reply that is not JSON",
            )
        message = _message(reply)
        if response.status_code in (401, 403):
            return False, f"OpenAlgo at {self.base_url} rejected the API key: {message or 'forbidden'}"
        if response.status_code >= 400 or not isinstance(reply, dict) or reply.get("status") != "success":
            return (
                False,
                f"OpenAlgo at {self.base_url} answered HTTP {response.status_code}: {message or 'error'}",
            )
        data = reply.get("data") if isinstance(reply.get("data"), dict) else {}
        broker = data.get("broker")
        return True, f"connected to OpenAlgo at {self.base_url}" + (f" (broker {broker})" if broker else "")

    # ---- HTTP --------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any], *, what: str, symbol: str) -> Any:
        """POST ``body`` plus the API key, retrying transient failures; translate errors into ours."""
        payload = {"apikey": self._api_key.get_secret_value(), **body}
        delay = self.backoff_s
        failure = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = 0.0
            try:
                response = self._client.post(path, json=payload)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {_clip(exc) or 'network error'}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    failure = f"HTTP {status} {_clip(response.text, 120)!r}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                else:
                    try:
                        reply = response.json()
                    except ValueError:
                        if status >= 400:  # an HTML error page: probably not an OpenAlgo server at all
                            raise UpstreamUnavailableError(
                                f"OpenAlgo {what} answered HTTP {status} with a reply that is not JSON; "
                                f"is {self.base_url} an OpenAlgo server?",
                                details={"provider": "openalgo", "status": status},
                            ) from None
                        failure = f"malformed JSON: {_clip(response.text, 80)!r}"
                    else:
                        if status < 400 and isinstance(reply, dict) and reply.get("status") == "success":
                            return reply
                        self._refuse(status, reply, what, symbol)
            if attempt < self.max_attempts:
                self._sleep(min(max(delay, retry_after), self.max_backoff_s))
                delay *= 2
        raise UpstreamUnavailableError(
            f"OpenAlgo {what} failed after {self.max_attempts} attempts: {failure}",
            details={"provider": "openalgo", "call": what, "attempts": self.max_attempts},
        )

    def _refuse(self, status: int, reply: Any, what: str, symbol: str) -> None:
        message = _message(reply) or f"HTTP {status}"
        lowered = message.lower()
        if status in (401, 403) or "apikey" in lowered or "api key" in lowered:
            raise UpstreamUnavailableError(
                f"OpenAlgo rejected the API key for {what} ({message}); check the configured key",
                code="UPSTREAM_AUTH_FAILED",
                details={"provider": "openalgo", "status": status},
            )
        if status == 404 or ("symbol" in lowered and ("not found" in lowered or "invalid" in lowered)):
            raise NotFoundError("symbol", symbol, message=f"OpenAlgo has no symbol {symbol}: {message}")
        raise InvalidInputError(f"OpenAlgo refused {what}: {message}", code="UPSTREAM_REFUSED")


def _message(reply: Any) -> str:
    if not isinstance(reply, dict):
        return ""
    message = reply.get("message") or reply.get("error") or ""
    return _clip(message if isinstance(message, str) else str(message))


def _history_rows(reply: dict[str, Any]) -> list[tuple[int, tuple[float, float, float, float, float]]]:
    data = reply.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise UpstreamUnavailableError("OpenAlgo history reply has no data list")
    rows = []
    for item in data:
        try:
            stamp = int(item["timestamp"])
            values = tuple(float(item[k]) if k != "volume" else float(item.get(k) or 0) for k in BAR_COLUMNS)
        except (KeyError, TypeError, ValueError):
            continue  # a candle without prices: the broker sent a gap
        if not all(math.isfinite(v) for v in values):
            continue
        rows.append((stamp, values))
    return rows  # type: ignore[return-value]


def _instrument(item: dict[str, Any]) -> Instrument | None:
    exchange = str(item.get("exchange") or "").upper()
    venue = _VENUES.get(exchange)
    kind_text = str(item.get("instrumenttype") or "").upper()
    symbol = str(item.get("symbol") or "")
    if venue is None or not symbol:
        return None
    index = exchange.endswith("_INDEX") or kind_text == "INDEX"
    if not index and kind_text not in _EQUITY_TYPES:
        return None
    tick = item.get("tick_size")
    lot = item.get("lotsize")
    return Instrument(
        id=InstrumentId(venue, symbol.upper()),
        kind=InstrumentKind.INDEX if index else InstrumentKind.EQUITY,
        name=str(item.get("name") or symbol),
        currency="INR",
        tick_size=Decimal(str(tick)) if tick not in (None, "", 0) else Decimal("0.05"),
        lot_size=Decimal(str(lot)) if lot not in (None, "", 0) else Decimal(1),
    )










