"""The instrument catalogue: resolve any symbol spelling, search, and add user-imported symbols."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from quantdesk.core.errors import ConflictError, InvalidInputError, NotFoundError
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue, parse_symbol

# Preference when one pair is listed as several kinds and the caller names none.
_KIND_PREFERENCE = (
    InstrumentKind.EQUITY,
    InstrumentKind.SPOT,
    InstrumentKind.PERPETUAL,
    InstrumentKind.INDEX,
)


def parse_venue(value: str | Venue | None, *, field: str = "exchange") -> Venue | None:
    """Turn ``"nse"``, ``"NSE"``, ``Venue.NSE`` or None into a Venue; raise InvalidInputError otherwise."""
    if value is None or isinstance(value, Venue):
        return value
    text = str(value).strip().upper()
    if not text:
        return None
    if text in ("BINANCE", "BYBIT", "OKX"):  # exchange names the surfaces use for crypto
        return Venue.CRYPTO
    try:
        return Venue(text)
    except ValueError:
        allowed = ", ".join(v.value for v in Venue)
        raise InvalidInputError(
            f"{field} {value!r} is not a known exchange; use one of {allowed}", field=field
        ) from None


class InstrumentCatalog:
    """All instruments quantdesk can quote; thread-safe for concurrent reads and ``add``."""

    def __init__(self, instruments: Iterable[Instrument] = ()):
        self._lock = threading.Lock()
        self._by_id: dict[InstrumentId, dict[InstrumentKind, Instrument]] = {}
        for instrument in instruments:
            self._by_id.setdefault(instrument.id, {})[instrument.kind] = instrument

    def __len__(self) -> int:
        return sum(len(kinds) for kinds in self._by_id.values())

    def __iter__(self):
        return iter(self.all())

    def all(self, venue: str | Venue | None = None, kind: InstrumentKind | None = None) -> list[Instrument]:
        """Every instrument, optionally of one venue and kind, sorted by venue then symbol."""
        v = parse_venue(venue)
        with self._lock:
            items = [i for kinds in self._by_id.values() for i in kinds.values()]
        items = [i for i in items if (v is None or i.id.venue == v) and (kind is None or i.kind == kind)]
        return sorted(items, key=lambda i: (i.id.venue.value, i.symbol, i.kind.value))

    def resolve(
        self, text: str, venue: str | Venue | None = None, *, kind: InstrumentKind | str | None = None
    ) -> Instrument:
        """Find the instrument any spelling names (``BTCUSDT``, ``BTC/USDT``, ``btc_usdt``, ``RELIANCE``).

        A pair listed both as spot and perpetual resolves to spot unless ``kind`` is given or
        the text uses ccxt's perpetual spelling ``BTC/USDT:USDT``. Raises NotFoundError naming
        the symbol when nothing matches, InvalidInputError for malformed text.
        """
        v = parse_venue(venue)
        wanted = InstrumentKind(kind) if kind is not None else None
        if wanted is None and ":" in text and text.split(":", 1)[0].upper() not in Venue.__members__:
            wanted = InstrumentKind.PERPETUAL
        iid = parse_symbol(text, venue=v)
        candidates = [iid]
        if iid.venue == Venue.CRYPTO and v is None:
            candidates.append(
                InstrumentId(Venue.NSE, iid.base + (iid.quote or ""))
            )  # e.g. an NSE name ending in INR
        with self._lock:
            for cid in candidates:
                kinds = self._by_id.get(cid)
                if not kinds:
                    continue
                if wanted is not None:
                    if wanted in kinds:
                        return kinds[wanted]
                    continue
                for k in _KIND_PREFERENCE:
                    if k in kinds:
                        return kinds[k]
        where = f" on {v.value}" if v else ""
        what = f" as {wanted.value}" if wanted else ""
        raise NotFoundError(
            "symbol", text, message=f"symbol {text!r} not found{where}{what}", code="SYMBOL_NOT_FOUND"
        )

    def exists(self, text: str, venue: str | Venue | None = None) -> bool:
        """Whether ``resolve`` would succeed (malformed text counts as unknown)."""
        try:
            self.resolve(text, venue)
        except (NotFoundError, InvalidInputError):
            return False
        return True

    def search(
        self,
        q: str,
        exchange: str | Venue | None = None,
        *,
        kind: InstrumentKind | None = None,
        limit: int = 50,
    ) -> list[Instrument]:
        """Instruments whose symbol or name starts with or contains ``q`` (case-insensitive).

        Ranked: exact symbol, symbol prefix, name prefix, symbol substring, name substring.
        Separators are ignored, so ``btc/usdt`` finds BTCUSDT.
        """
        if limit <= 0:
            raise InvalidInputError(f"limit {limit} must be positive", field="limit")
        needle = (q or "").strip().upper()
        compact = "".join(c for c in needle if c not in "/_- ")
        ranked: list[tuple[int, Instrument]] = []
        for instrument in self.all(exchange, kind):
            symbol = instrument.symbol.upper()
            name = instrument.name.upper()
            if not needle:
                rank = 5
            elif symbol in (needle, compact):
                rank = 0
            elif symbol.startswith(needle) or (compact and symbol.startswith(compact)):
                rank = 1
            elif name.startswith(needle):
                rank = 2
            elif needle in symbol or (compact and compact in symbol):
                rank = 3
            elif needle in name:
                rank = 4
            else:
                continue
            ranked.append((rank, instrument))
        ranked.sort(key=lambda r: (r[0], r[1].id.venue.value, r[1].symbol, r[1].kind.value))
        return [i for _, i in ranked[:limit]]

    def add(self, instrument: Instrument, *, replace: bool = False) -> Instrument:
        """Register a user-imported instrument; adding an identical one again is a no-op.

        Raises ConflictError when a different definition of the same symbol and kind exists
        and ``replace`` is false.
        """
        with self._lock:
            kinds = self._by_id.setdefault(instrument.id, {})
            existing = kinds.get(instrument.kind)
            if existing is not None and existing != instrument and not replace:
                raise ConflictError(
                    f"symbol {instrument.symbol} ({instrument.kind.value}) already exists with a different definition",
                    code="SYMBOL_EXISTS",
                    details={"symbol": instrument.symbol},
                )
            kinds[instrument.kind] = instrument
        return instrument
