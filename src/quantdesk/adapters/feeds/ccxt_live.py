"""Live crypto market data over an exchange's WebSocket streams through ccxt.pro (Binance by default).

Publishes the same bus messages as ``LiveSimFeed``, so the trading service and the push
surfaces consume either feed unchanged:

* ``market:<SYM>``  one per trade (``watch_trades``): ``{price, bid, ask, size, volume_24h,
  change_24h, timestamp}``. Bid and ask come from the latest book top (else the ticker, else
  the trade price); the 24h quote volume and percent change from the latest ``watch_ticker``
  update, None until the first one arrives.
* ``book:<SYM>``    the top ``book_levels`` levels of each ``watch_order_book`` update.
* ``bars:<SYM>``    each 1m bar of ``watch_ohlcv`` once closed: when Binance flags the kline
  closed (``"x": true``, which ccxt's OHLCV arrays drop, so the exchange class keeps it), or
  when the next bar opens (every other exchange). Bars still forming are never published.

Timestamps are ISO-8601 UTC with milliseconds and a ``Z``. ccxt.pro reconnects a dropped
socket on the next ``watch_*`` call; each stream runs in its own loop that logs the error and
calls again after an exponential backoff, so a failing exchange never ends ``run``.
``stop()`` ends ``run``, which then closes the exchange (its sockets and HTTP session).

``base_url`` replaces the scheme and host of every REST URL (markets, depth snapshots);
``ws_url`` receives every WebSocket under ``/<original host><original path>``. The host stays
in the path because ccxt's binance tells spot sockets from futures ones by ``/stream`` in
the URL (``stream.binance.com`` versus ``fstream.binance.com``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import ccxt
import ccxt.pro as ccxtpro

from quantdesk.adapters.feeds.ccxt_feed import EXCHANGE_OPTIONS
from quantdesk.adapters.wire import clip, rebase_urls
from quantdesk.core.errors import ConfigError, InvalidInputError
from quantdesk.core.instruments import Instrument, InstrumentKind, Venue

log = logging.getLogger("quantdesk.feeds.ccxt_live")

# Per-exchange ccxt.pro options, as data. Binance: watch_ticker on the full 24h ticker stream
# (``@ticker``: best bid/ask on spot, percent change) instead of ccxt's default ``@miniTicker``.
LIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"watchTickers": {"name": "ticker"}},
}


class Publisher(Protocol):
    async def publish(self, topic: str, message: dict) -> None: ...


_Step = Callable[[Publisher], Awaitable[None]]


def _iso_ms(stamp_ms: int | float) -> str:
    at = datetime.fromtimestamp(int(stamp_ms) / 1000, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class _ClosedKlines:
    """Mixin for ccxt.pro's binance: remember klines flagged closed (``k.x``) by symbol and open time."""

    closed_klines: dict[str, set[int]]

    def handle_ohlcv(self, client: Any, message: dict) -> None:
        kline = message.get("k") if isinstance(message, dict) else None
        if isinstance(kline, dict) and kline.get("x") is True and kline.get("i") == "1m":
            # the same symbol resolution as ccxt's handler: the socket's URL decides spot or swap
            market_type = "spot" if self.is_spot_url(client) else "contract"  # type: ignore[attr-defined]
            symbol = self.safe_symbol(kline.get("s"), None, None, market_type)  # type: ignore[attr-defined]
            self.closed_klines.setdefault(symbol, set()).add(int(kline["t"]))
        super().handle_ohlcv(client, message)  # type: ignore[misc]


def _exchange_class(exchange_id: str) -> type:
    base = getattr(ccxtpro, exchange_id, None)
    if exchange_id not in ccxtpro.exchanges or base is None:
        raise ConfigError(
            f"ccxt.pro exchange {exchange_id!r} is unknown; use one of ccxt.pro.exchanges (e.g. binance)"
        )
    if issubclass(base, ccxtpro.binance):  # Binance-family venues flag closed klines
        return type(f"{base.__name__}_closed_klines", (_ClosedKlines, base), {})
    return base


def rebase_ws_urls(urls: Any, ws_url: str) -> Any:
    """Point every ``ws``/``wss`` URL in ccxt's nested ``urls['api']['ws']`` at ``ws_url``/<host><path>."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return f"{ws_url}/{parts.netloc}{parts.path}" if parts.scheme in ("ws", "wss") else urls
    if isinstance(urls, dict):
        return {key: rebase_ws_urls(value, ws_url) for key, value in urls.items()}
    return urls


class CcxtLiveFeed:
    """Asyncio feed of live ticks, book tops and closed 1m bars for ``instruments`` from a ccxt.pro exchange."""

    def __init__(
        self,
        exchange_id: str = "binance",
        instruments: Sequence[Instrument] = (),
        *,
        base_url: str | None = None,
        ws_url: str | None = None,
        book_levels: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        rate_limit: bool = True,
        options: Mapping[str, Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        if book_levels < 1:
            raise ConfigError(f"book_levels {book_levels} must be at least 1")
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise ConfigError(
                f"backoff_s {backoff_s} must be positive and at most max_backoff_s {max_backoff_s}"
            )
        self.exchange_id = exchange_id
        self.instruments = list(instruments)
        # (topic symbol, ccxt symbol): BTCUSDT publishes the perpetual BTC/USDT:USDT or the spot BTC/USDT
        self._markets = list(dict.fromkeys((inst.symbol, _ccxt_symbol(inst, exchange_id)) for inst in self.instruments))
        self.book_levels = book_levels
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._exchange_class = _exchange_class(exchange_id)
        self._config = {
            "enableRateLimit": rate_limit,
            "timeout": int(timeout_s * 1000),
            "options": {
                **EXCHANGE_OPTIONS.get(exchange_id, {}),
                **LIVE_OPTIONS.get(exchange_id, {}),
                **dict(options or {}),
            },
        }
        self._base_url = base_url.rstrip("/") if base_url else None
        self._ws_url = ws_url.rstrip("/") if ws_url else None
        self._exchange: Any = None
        self._stop: asyncio.Event | None = None
        self._stopped = False
        self._tickers: dict[str, dict] = {}
        self._tops: dict[str, tuple[float, float]] = {}
        self.published = 0

    def stop(self) -> None:
        """Ask ``run`` to finish (it closes the exchange before returning); a stopped feed stays stopped."""
        self._stopped = True
        if self._stop is not None:
            self._stop.set()

    async def run(self, publisher: Publisher) -> int:
        """Publish market, book and bar messages until ``stop()``; return how many were published."""
        if self._stopped:
            return 0
        self._stop = asyncio.Event()
        self.published = 0
        exchange = self._exchange = self._new_exchange()
        tasks = [
            asyncio.create_task(self._follow(name, market, step, publisher), name=f"ccxt-live {name} {market}")
            for symbol, market in self._markets
            for name, step in (
                ("trades", self._trades(symbol, market)),
                ("ticker", self._ticker(market)),
                ("order book", self._book(symbol, market)),
                ("ohlcv 1m", self._bars(symbol, market)),
            )
        ]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close(exchange)
        return self.published

    # ---- stream loops -------------------------------------------------------------------
    async def _follow(self, name: str, market: str, step: _Step, publisher: Publisher) -> None:
        """Call ``step`` for ever, retrying after errors with exponential backoff (never raises)."""
        delay = self.backoff_s
        while not self._stopped:
            try:
                await step(publisher)
                delay = self.backoff_s
                continue
            except asyncio.CancelledError:
                raise
            except ccxt.BadSymbol as exc:
                log.error("ccxt live %s has no market %s (%s); not following its %s",
                          self.exchange_id, market, clip(exc), name)
                return
            except ccxt.BaseError as exc:  # NetworkError covers dropped sockets; ccxt redials on the next call
                log.warning("ccxt live %s %s %s failed (%s: %s); retrying in %.2fs", self.exchange_id, name,
                            market, type(exc).__name__, clip(exc), delay)
            except Exception:  # the server task must survive anything a stream throws
                log.exception("ccxt live %s %s %s failed unexpectedly; retrying in %.2fs", self.exchange_id,
                              name, market, delay)
            await self._sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)

    def _trades(self, symbol: str, market: str) -> _Step:
        async def step(publisher: Publisher) -> None:
            trades = await self._exchange.watch_trades(market)
            for trade in trades:
                price = float(trade["price"])
                bid, ask = self._tops.get(market) or self._ticker_top(market) or (price, price)
                ticker = self._tickers.get(market) or {}
                volume, change = ticker.get("quoteVolume"), ticker.get("percentage")
                data = {
                    "price": price,
                    "bid": bid,
                    "ask": ask,
                    "size": _float(trade.get("amount")) or 0.0,
                    "volume_24h": None if volume is None else round(float(volume), 2),
                    "change_24h": None if change is None else round(float(change), 4),
                    "timestamp": _iso_ms(trade.get("timestamp") or self._exchange.milliseconds()),
                }
                await self._publish(publisher, f"market:{symbol}", {"type": "market", "symbol": symbol, "data": data})

        return step

    def _ticker(self, market: str) -> _Step:
        async def step(publisher: Publisher) -> None:
            self._tickers[market] = await self._exchange.watch_ticker(market)

        return step

    def _book(self, symbol: str, market: str) -> _Step:
        async def step(publisher: Publisher) -> None:
            book = await self._exchange.watch_order_book(market)
            bids = [[float(p), float(s)] for p, s, *_ in book["bids"][: self.book_levels]]
            asks = [[float(p), float(s)] for p, s, *_ in book["asks"][: self.book_levels]]
            if bids and asks:
                self._tops[market] = (bids[0][0], asks[0][0])
            stamp = _iso_ms(book.get("timestamp") or self._exchange.milliseconds())
            message = {"type": "book", "symbol": symbol, "data": {"bids": bids, "asks": asks, "timestamp": stamp}}
            await self._publish(publisher, f"book:{symbol}", message)

        return step

    def _bars(self, symbol: str, market: str) -> _Step:
        forming: dict[int, list] = {}  # candles not yet published, by open time (ms)
        last_published = -1

        async def step(publisher: Publisher) -> None:
            nonlocal last_published
            for candle in await self._exchange.watch_ohlcv(market, "1m"):
                if int(candle[0]) > last_published:
                    forming[int(candle[0])] = candle
            if not forming:
                return
            newest = max(forming)
            flagged: set[int] = self._exchange.closed_klines.setdefault(market, set())
            for open_ms in sorted(forming):
                if open_ms < newest or open_ms in flagged:  # the next bar opened, or Binance said closed
                    candle = forming.pop(open_ms)
                    last_published = open_ms
                    await self._publish(publisher, f"bars:{symbol}", _bar_message(symbol, candle))
            flagged.difference_update([t for t in flagged if t <= last_published])

        return step

    # ---- internals ----------------------------------------------------------------------
    def _ticker_top(self, market: str) -> tuple[float, float] | None:
        ticker = self._tickers.get(market) or {}
        bid, ask = ticker.get("bid"), ticker.get("ask")
        return (float(bid), float(ask)) if bid is not None and ask is not None else None

    async def _publish(self, publisher: Publisher, topic: str, message: dict) -> None:
        await publisher.publish(topic, message)
        self.published += 1

    def _new_exchange(self) -> Any:
        exchange = self._exchange_class(self._config)
        exchange.closed_klines = {}
        if self._base_url:
            exchange.urls["api"] = rebase_urls(exchange.urls["api"], self._base_url)
        if self._ws_url:
            exchange.urls["api"]["ws"] = rebase_ws_urls(exchange.urls["api"]["ws"], self._ws_url)
        return exchange

    async def _close(self, exchange: Any) -> None:
        try:
            await exchange.close()
        except Exception:  # closing is best effort; a half-open socket must not fail shutdown
            log.exception("ccxt live %s: closing the exchange failed", self.exchange_id)
        finally:
            self._exchange = None


def _bar_message(symbol: str, candle: list) -> dict:
    open_ms, o, h, lo, c, v = candle[:6]
    return {
        "type": "bar",
        "symbol": symbol,
        "timeframe": "1m",
        "data": {
            "timestamp": _iso_ms(open_ms),
            "open": float(o),
            "high": float(h),
            "low": float(lo),
            "close": float(c),
            "volume": float(v or 0.0),
        },
    }


def _ccxt_symbol(instrument: Instrument, exchange_id: str) -> str:
    """ccxt's unified symbol: ``BTC/USDT`` for spot, ``BTC/USDT:USDT`` for a USDT-settled perpetual."""
    iid = instrument.id
    if iid.venue != Venue.CRYPTO or not iid.quote:
        raise InvalidInputError(
            f"symbol {iid.key} is not a crypto pair; {exchange_id} streams crypto only", field="symbol"
        )
    pair = f"{iid.base}/{iid.quote}"
    return f"{pair}:{iid.quote}" if instrument.kind == InstrumentKind.PERPETUAL else pair
