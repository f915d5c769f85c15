"""Crypto history from any exchange ccxt supports (public OHLCV; Binance by default).

``CcxtFeed`` pages through ``fetch_ohlcv`` with ``since``/``limit`` (and ccxt's unified
``until``) until the requested end, drops the bar still open at the clock's now, and keeps
bars opening in ``[start, end)``. Spot pairs map to ccxt's ``BTC/USDT``, perpetuals to
``BTC/USDT:USDT``. ccxt throttles requests itself (``enableRateLimit``); on top of that,
rate-limit answers (429/418), network errors, 5xx and malformed JSON are retried with
exponential backoff (honouring ``Retry-After``) and become UpstreamUnavailableError after
``max_attempts``. An unknown market is NotFoundError. ``latest_price`` polls
``fetch_ticker`` (REST); streaming through ccxt.pro is not wired here.

``base_url`` replaces the scheme and host of every REST URL of the exchange (keeping each
path), which points the feed at a mirror, a proxy or a test server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from quantdesk.adapters.wire import MalformedResponseError as _MalformedResponseError
from quantdesk.adapters.wire import clip as _clip
from quantdesk.adapters.wire import rebase_urls as _rebase
from quantdesk.adapters.wire import retry_after_seconds as _retry_after
from quantdesk.adapters.wire import wall_clock
from quantdesk.core.clock import Clock
from quantdesk.core.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    UpstreamUnavailableError,
)
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue, parse_symbol
from quantdesk.core.market import Tick, Timeframe
from quantdesk.services.ports import BAR_COLUMNS

# Per-exchange ccxt options, as data. Binance: load only spot and USD-M markets (two
# exchangeInfo calls) instead of also the coin-margined ones.
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot", "linear"]}},
}






class CcxtFeed:
    """History provider over a ccxt exchange's public market data (``name = "ccxt"``)."""

    def __init__(
        self,
        exchange_id: str = "binance",
        *,
        base_url: str | None = None,
        rate_limit: bool = True,
        name: str = "ccxt",
        page_limit: int = 1000,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        options: Mapping[str, Any] | None = None,
        now: Clock | Callable[[], datetime] = wall_clock,
        sleep: Callable[[float], None] = time.sleep,
    ):
        exchange_class = getattr(ccxt, exchange_id, None)
        if exchange_id not in ccxt.exchanges or exchange_class is None:
            raise ConfigError(
                f"ccxt exchange {exchange_id!r} is unknown; use one of ccxt.exchanges (e.g. binance)"
            )
        if page_limit < 1 or max_attempts < 1:
            raise ConfigError(f"page_limit {page_limit} and max_attempts {max_attempts} must be at least 1")
        self.name = name
        self.exchange_id = exchange_id
        self.page_limit = page_limit
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._now = now.now if isinstance(now, Clock) else now
        self._sleep = sleep
        self._lock = threading.RLock()  # ccxt's sync exchanges are not thread-safe
        self._exchange = exchange_class(
            {
                "enableRateLimit": rate_limit,
                "timeout": int(timeout_s * 1000),
                "options": {**EXCHANGE_OPTIONS.get(exchange_id, {}), **dict(options or {})},
            }
        )
        self._exchange.enableLastJsonResponse = True  # to tell malformed JSON from an empty page
        if base_url:
            self._exchange.urls["api"] = _rebase(self._exchange.urls["api"], base_url.rstrip("/"))

    # ---- HistoryProvider -------------------------------------------------------------
    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Closed bars opening in ``[start, end)``, fetched page by page.

        Raises NotFoundError for a market the exchange does not list, InvalidInputError for
        a non-crypto instrument or a timeframe the exchange lacks, UpstreamUnavailableError
        when the exchange keeps failing.
        """
        tf = Timeframe(timeframe)
        start_ms, end_ms = _ms(start, "start"), _ms(end, "end")
        if start_ms > end_ms:
            raise InvalidInputError(
                f"start {start.isoformat()} is after end {end.isoformat()}; start must be at or before end",
                field="start",
            )
        symbol = self.symbol_for(instrument)
        if tf.value not in (self._exchange.timeframes or {}):
            raise InvalidInputError(
                f"timeframe {tf.value} is not offered by {self.exchange_id}", field="timeframe"
            )
        self._markets()
        step = tf.seconds * 1000
        # A bar is closed once open + step <= now; stop_ms bounds open times (exclusive).
        stop_ms = min(end_ms, _ms(self._now(), "now") - step + 1)
        rows: list[list] = []
        cursor = start_ms
        while cursor < stop_ms:
            page = self._call(
                f"fetch_ohlcv {symbol} {tf.value}",
                self._exchange.fetch_ohlcv,
                symbol,
                tf.value,
                since=cursor,
                limit=self.page_limit,
                params={"until": stop_ms - 1},
            )
            rows.extend(r for r in page if cursor <= r[0] < stop_ms)
            if len(page) < self.page_limit:
                break  # the exchange had no more bars up to `until`
            following = int(page[-1][0]) + step
            if following <= cursor:
                break  # no progress: the exchange ignores `since`
            cursor = following
        return _frame(rows)

    def search(self, q: str) -> list[Instrument]:
        """Spot and perpetual markets whose symbol, id or base asset contains ``q`` (case-insensitive)."""
        needle = (q or "").strip().upper().replace("_", "/")
        found = []
        for market in self._markets().values():
            if not (market.get("spot") or market.get("swap")) or market.get("active") is False:
                continue
            haystack = (market["symbol"].upper(), str(market.get("id", "")).upper(), market["base"].upper())
            if any(needle in text for text in haystack):
                found.append(self._instrument(market))
        return sorted(found, key=lambda i: (i.symbol, i.kind.value))

    # ---- extras ----------------------------------------------------------------------
    def latest_price(self, instrument: Instrument | str) -> Tick:
        """The last traded price, polled over REST (``fetch_ticker``); ``at`` is the exchange's time."""
        if isinstance(instrument, str):
            iid = parse_symbol(instrument)
            symbol = self._ccxt_symbol(iid, InstrumentKind.SPOT)
        else:
            symbol = self.symbol_for(instrument)
        self._markets()
        ticker = self._call(f"fetch_ticker {symbol}", self._exchange.fetch_ticker, symbol)
        last = ticker.get("last")
        if last is None:
            raise UpstreamUnavailableError(
                f"{self.exchange_id} sent a ticker for {symbol} without a last price"
            )
        stamp = ticker.get("timestamp")
        at = datetime.fromtimestamp(stamp / 1000, UTC) if stamp else self._now()
        return Tick(at=at, price=Decimal(str(last)))

    def symbol_for(self, instrument: Instrument) -> str:
        """ccxt's unified symbol: ``BTC/USDT`` for spot, ``BTC/USDT:USDT`` for a USDT-settled perpetual."""
        return self._ccxt_symbol(instrument.id, instrument.kind)

    # ---- internals -------------------------------------------------------------------
    def _ccxt_symbol(self, iid: InstrumentId, kind: InstrumentKind) -> str:
        if iid.venue != Venue.CRYPTO or not iid.quote:
            raise InvalidInputError(
                f"symbol {iid.key} is not a crypto pair; {self.exchange_id} quotes crypto only",
                field="symbol",
            )
        pair = f"{iid.base}/{iid.quote}"
        return f"{pair}:{iid.quote}" if kind == InstrumentKind.PERPETUAL else pair

    def _markets(self) -> dict[str, dict]:
        if self._exchange.markets:
            return self._exchange.markets
        return self._call("load_markets", self._exchange.load_markets)

    def _instrument(self, market: dict) -> Instrument:
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        swap = bool(market.get("swap"))
        return Instrument(
            id=InstrumentId(Venue.CRYPTO, market["base"], market["quote"]),
            kind=InstrumentKind.PERPETUAL if swap else InstrumentKind.SPOT,
            name=f"{market['base']}/{market['quote']}" + (" perpetual" if swap else ""),
            currency=market["quote"],
            tick_size=self._step(precision.get("price")),
            lot_size=self._step(precision.get("amount")),
            min_notional=Decimal(str((limits.get("cost") or {}).get("min") or 0)),
            max_leverage=int((limits.get("leverage") or {}).get("max") or 1),
        )

    def _step(self, precision: float | int | None) -> Decimal:
        if precision is None:
            return Decimal("0.00000001")
        if self._exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(precision))
        return Decimal(str(precision))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one ccxt call, retrying transient failures; translate ccxt errors into ours."""
        delay = self.backoff_s
        failure = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = 0.0
            try:
                with self._lock:
                    self._exchange.last_http_response = None
                    self._exchange.last_json_response = None
                    result = fn(*args, **kwargs)
                    if (
                        self._exchange.last_http_response is not None
                        and self._exchange.last_json_response is None
                    ):
                        raise _MalformedResponseError(
                            f"malformed JSON: {_clip(self._exchange.last_http_response, 80)!r}"
                        )
                return result
            except ccxt.BadSymbol as exc:
                market = args[0] if args else "?"
                raise NotFoundError(
                    "market", market, message=f"{self.exchange_id} has no market {market}"
                ) from exc
            except ccxt.BadRequest as exc:
                raise InvalidInputError(f"{self.exchange_id} refused {what}: {_clip(exc)}") from exc
            except (ccxt.NetworkError, ccxt.BadResponse, _MalformedResponseError) as exc:
                # NetworkError covers 429/418 (RateLimitExceeded, DDoSProtection), 5xx
                # (ExchangeNotAvailable), timeouts and refused connections.
                failure = f"{type(exc).__name__}: {_clip(exc)}"
                retry_after = _retry_after(self._exchange.last_response_headers)
            except ccxt.BaseError as exc:
                raise UpstreamUnavailableError(
                    f"{self.exchange_id} {what} failed: {_clip(exc)}",
                    details={"exchange": self.exchange_id, "call": what},
                ) from exc
            except (TypeError, ValueError, KeyError, IndexError) as exc:  # a reply ccxt could not parse
                failure = f"unexpected reply ({type(exc).__name__}: {_clip(exc)})"
            if attempt < self.max_attempts:
                self._sleep(min(max(delay, retry_after), self.max_backoff_s))
                delay *= 2
        raise UpstreamUnavailableError(
            f"{self.exchange_id} {what} failed after {self.max_attempts} attempts: {failure}",
            details={"exchange": self.exchange_id, "call": what, "attempts": self.max_attempts},
        )








def _ms(at: datetime, field: str) -> int:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{field} {at!r} must be a timezone-aware datetime", field=field)
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _frame(rows: list[list]) -> pd.DataFrame:
    """The standard bar frame from ccxt OHLCV rows (ms open time first); later duplicates win."""
    if rows:
        data = np.array([[float(v) if v is not None else np.nan for v in r[:6]] for r in rows])
        times = data[:, 0].astype(np.int64)
        order = np.argsort(times, kind="stable")
        times, data = times[order], data[order]
        keep = np.append(times[1:] != times[:-1], True)
        times, data = times[keep], data[keep]
        data = data[~np.isnan(data[:, 1:5]).any(axis=1)]
        data[:, 5] = np.nan_to_num(data[:, 5])  # a missing volume counts as none traded
        times = data[:, 0].astype(np.int64)
    else:
        times, data = np.empty(0, np.int64), np.empty((0, 6))
    index = pd.DatetimeIndex(times.astype("datetime64[ms]").astype("datetime64[ns]"), name="open_at")
    columns = {name: data[:, i + 1].astype(np.float64) for i, name in enumerate(BAR_COLUMNS)}
    return pd.DataFrame(columns, index=index.tz_localize(UTC))
