"""Order matching against bars and quotes, in integer ticks and lots.

Prices are integers of the instrument's ``tick_size`` and quantities integers of its
``lot_size``: exact, and fast enough for a Python loop over millions of bars. The ledger
converts a match back to Decimal (``ticks × tick_size``) when it books the fill.

Rules for a bar ``(open, high, low, close)``, for orders working before the bar opened:

- market: fills at the open (taker, slippage applied against the taker).
- limit buy: at the open if the open is at or below the limit (taker), else at the limit if
  the low reaches it (maker). Sells mirror.
- stop_market buy: at the open if the bar gaps through the stop (the stop price is not
  available — gaps fill at the open), else at the stop if the high reaches it (taker,
  slippage applied). Sells mirror.
- stop_limit: triggers like a stop; a gap trigger then matches as a limit at the open; an
  intrabar trigger fills at the stop if the limit allows it, and otherwise rests as a
  triggered limit from the next bar (the path inside the bar is unknown).
- Protective stops (stop losses, liquidations) are matched before other orders; when a stop
  loss and a take profit of one position both fall inside a bar, the stop loss wins
  (pessimistic, as kernc/backtesting.py does).
- IOC/FOK orders get one chance, the first bar (or quote) they meet; what does not fill expires.
- With ``volume_limit`` set, one bar fills at most that fraction of its volume per order;
  the rest stays working (GTC), expires (IOC) or the whole order expires (FOK).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from quantdesk.core.money import MONEY_CONTEXT
from quantdesk.core.orders import Order, OrderType, TimeInForce
from quantdesk.core.portfolio import ExitReason, Liquidity

MARKET, LIMIT, STOP_MARKET, STOP_LIMIT = 0, 1, 2, 3
_KIND = {OrderType.MARKET: MARKET, OrderType.LIMIT: LIMIT, OrderType.STOP_MARKET: STOP_MARKET,
         OrderType.STOP_LIMIT: STOP_LIMIT}


class SlippageModel(Protocol):
    """Move a taker execution price against the taker, in ticks."""

    def apply(self, price_ticks: int, sign: int) -> int: ...


@dataclass(frozen=True, slots=True)
class NoSlippage:
    def apply(self, price_ticks: int, sign: int) -> int:
        return price_ticks


@dataclass(frozen=True, slots=True)
class FixedTickSlippage:
    """A constant number of ticks against the taker."""

    ticks: int

    def apply(self, price_ticks: int, sign: int) -> int:
        return max(1, price_ticks + sign * self.ticks)


@dataclass(frozen=True, slots=True)
class BpsSlippage:
    """A proportional slippage in basis points, rounded against the taker to a whole tick."""

    bps: Decimal

    def apply(self, price_ticks: int, sign: int) -> int:
        if not self.bps:
            return price_ticks
        factor = MONEY_CONTEXT.add(Decimal(1), MONEY_CONTEXT.divide(sign * self.bps, Decimal(10000)))
        raw = MONEY_CONTEXT.multiply(Decimal(price_ticks), factor)
        return max(1, int(raw.to_integral_value(rounding=ROUND_CEILING if sign > 0 else ROUND_FLOOR)))


class WorkingOrder:
    """The matching engine's view of a live order: integers only, plus the domain order."""

    __slots__ = ("order", "sign", "kind", "limit", "stop", "triggered", "lots", "tif", "reason",
                 "protective", "seen", "sized_later", "position_id")

    def __init__(self, order: Order, *, sign: int, kind: int, limit: int, stop: int, lots: int,
                 reason: ExitReason | None = None, protective: bool = False, sized_later: bool = False):
        self.order = order
        self.sign = sign
        self.kind = kind
        self.limit = limit
        self.stop = stop
        self.triggered = False
        self.lots = lots  # lots still to fill (0 with sized_later until sized at fill time)
        self.tif = order.time_in_force
        self.reason = reason
        self.protective = protective
        self.seen = False
        self.sized_later = sized_later
        self.position_id: str | None = None


@dataclass(slots=True)
class Match:
    """A proposed execution; the kernel sizes, margin-checks and books it."""

    working: WorkingOrder
    price: int
    lots: int
    liquidity: Liquidity


@dataclass(slots=True)
class Expiry:
    working: WorkingOrder
    reason: str


class MatchingEngine:
    """Keep working orders and match them against bars or a last price (all integers)."""

    def __init__(self, slippage: SlippageModel | None = None, volume_limit: Decimal | None = None,
                 lot_size: Decimal = Decimal(1)):
        self.slippage: SlippageModel = slippage or NoSlippage()
        self.volume_limit = volume_limit
        self._lot_size = lot_size
        self.working: list[WorkingOrder] = []

    def add(self, working: WorkingOrder) -> None:
        if working.protective:
            self.working.insert(0, working)
        else:
            self.working.append(working)

    def remove(self, working: WorkingOrder) -> None:
        if working in self.working:
            self.working.remove(working)

    def find(self, order_id: str) -> WorkingOrder | None:
        for w in self.working:
            if w.order.id == order_id:
                return w
        return None

    def _cap(self, volume: float | None) -> int | None:
        if self.volume_limit is None or volume is None:
            return None
        cap = Decimal(repr(float(volume))) * self.volume_limit / self._lot_size
        return int(cap.to_integral_value(rounding=ROUND_FLOOR))

    def _price_on_bar(self, w: WorkingOrder, o: int, h: int, low: int) -> tuple[int, Liquidity] | None:
        sign = w.sign
        kind = w.kind
        slip = self.slippage.apply
        if kind == MARKET:
            return slip(o, sign), Liquidity.TAKER
        if kind == LIMIT or (kind == STOP_LIMIT and w.triggered):
            lim = w.limit
            if sign > 0:
                if o <= lim:
                    return o, Liquidity.TAKER
                if low <= lim:
                    return lim, Liquidity.MAKER
            else:
                if o >= lim:
                    return o, Liquidity.TAKER
                if h >= lim:
                    return lim, Liquidity.MAKER
            return None
        stop = w.stop
        if sign > 0:
            gapped = o >= stop
            hit = gapped or h >= stop
        else:
            gapped = o <= stop
            hit = gapped or low <= stop
        if not hit:
            return None
        if kind == STOP_MARKET:
            return slip(o if gapped else stop, sign), Liquidity.TAKER
        # stop-limit just triggered
        w.triggered = True
        lim = w.limit
        if gapped:
            if (sign > 0 and o <= lim) or (sign < 0 and o >= lim):
                return o, Liquidity.TAKER
            if (sign > 0 and low <= lim) or (sign < 0 and h >= lim):
                return lim, Liquidity.MAKER
            return None
        if (sign > 0 and lim >= stop) or (sign < 0 and lim <= stop):
            return stop, Liquidity.TAKER
        return None

    def on_bar(self, o: int, h: int, low: int, volume: float | None = None) -> tuple[list[Match], list[Expiry]]:
        """Match every working order against one bar; matched and expired orders leave the book."""
        matches: list[Match] = []
        expiries: list[Expiry] = []
        cap = self._cap(volume)
        for w in list(self.working):
            found = self._price_on_bar(w, o, h, low)
            once = w.tif is not TimeInForce.GTC
            if found is None:
                if once:
                    self.working.remove(w)
                    expiries.append(Expiry(w, f"{w.tif.value} order could not fill on its first bar"))
                else:
                    w.seen = True
                continue
            price, liquidity = found
            lots = w.lots
            if cap is not None and not w.sized_later and lots > cap:
                if w.tif is TimeInForce.FOK or cap == 0:
                    if once:
                        self.working.remove(w)
                        expiries.append(Expiry(w, "not enough volume to fill at once"))
                    continue
                lots = cap
            matches.append(Match(w, price, lots, liquidity))
            if lots == w.lots or w.sized_later:
                self.working.remove(w)
            else:
                w.lots -= lots
                if once:
                    self.working.remove(w)
                    expiries.append(Expiry(w, "rest of the IOC order could not fill"))
        return matches, expiries

    def match_now(self, w: WorkingOrder, last: int) -> Match | None:
        """Match a just-submitted order against the last traded price (paper trading).

        Market orders fill at ``last`` with slippage; a marketable limit fills at ``last``;
        a stop whose trigger is already through ``last`` fills at ``last``. Returns None when
        the order must rest.
        """
        sign = w.sign
        if w.kind == MARKET:
            return Match(w, self.slippage.apply(last, sign), w.lots, Liquidity.TAKER)
        if w.kind == LIMIT:
            if (sign > 0 and last <= w.limit) or (sign < 0 and last >= w.limit):
                return Match(w, last, w.lots, Liquidity.TAKER)
            return None
        if (sign > 0 and last >= w.stop) or (sign < 0 and last <= w.stop):
            if w.kind == STOP_MARKET:
                return Match(w, self.slippage.apply(last, sign), w.lots, Liquidity.TAKER)
            w.triggered = True
            if (sign > 0 and last <= w.limit) or (sign < 0 and last >= w.limit):
                return Match(w, last, w.lots, Liquidity.TAKER)
        return None

    def on_price(self, last: int) -> tuple[list[Match], list[Expiry]]:
        """Match working orders against a new last price (a tick, or a bar close in paper mode)."""
        matches: list[Match] = []
        for w in list(self.working):
            m = self.match_now(w, last)
            if m is not None:
                if w.kind == LIMIT:
                    # a resting limit that the market reached fills at its own price, as maker
                    m.price = w.limit
                    m.liquidity = Liquidity.MAKER
                self.working.remove(w)
                matches.append(m)
        return matches, []


def kind_of(order_type: OrderType) -> int:
    return _KIND[order_type]


@dataclass(frozen=True, slots=True)
class SimulatedBrokerConfig:
    """How a simulated venue executes.

    ``immediate_market_fills``: False for backtests (market orders fill at the next bar's
    open), True for paper trading (market orders fill at once against the last price).
    """

    slippage: SlippageModel = NoSlippage()
    volume_limit: Decimal | None = None
    immediate_market_fills: bool = False


class SimulatedBroker:
    """The Broker port over :class:`MatchingEngine`: a venue simulated on the kernel's market data."""

    def __init__(self, config: SimulatedBrokerConfig | None = None, lot_size: Decimal = Decimal(1)):
        self.config = config or SimulatedBrokerConfig()
        self.engine = MatchingEngine(self.config.slippage, self.config.volume_limit, lot_size)

    @property
    def working(self) -> list[WorkingOrder]:
        return self.engine.working

    def submit(self, working: WorkingOrder, last: int | None) -> Match | None:
        """Execute now when the venue would (paper: at ``last``); otherwise rest the order."""
        if self.config.immediate_market_fills and last is not None:
            match = self.engine.match_now(working, last)
            if match is not None:
                return match
        self.engine.add(working)
        return None

    def cancel(self, order_id: str) -> WorkingOrder | None:
        w = self.engine.find(order_id)
        if w is not None:
            self.engine.remove(w)
        return w

    def on_bar(self, o: int, h: int, low: int, volume: float | None = None) -> tuple[list[Match], list[Expiry]]:
        return self.engine.on_bar(o, h, low, volume)

    def on_price(self, last: int) -> tuple[list[Match], list[Expiry]]:
        return self.engine.on_price(last)


class PaperBroker(SimulatedBroker):
    """Paper trading: market orders fill at once against the current price; the rest rest."""

    def __init__(self, slippage: SlippageModel | None = None, lot_size: Decimal = Decimal(1)):
        super().__init__(SimulatedBrokerConfig(slippage or NoSlippage(), None, True), lot_size)
