"""The vectorised fast path: array signals plus a numba-compiled fill loop in exact integers.

It reproduces the event path trade for trade for strategies whose decisions are a function
of precomputed signals (:class:`~quantdesk.engine.strategy.Signals`) and the sign of the
position, executed as market orders at the next bar's open and sized on a fraction of the
available margin. The decision rule is :func:`signal_step` (shared with the event path):

    flat:   long_entry → buy;  else short_entry → sell
    long:   short_entry → flip to short (one order);  else long_exit → close
    short:  long_entry → flip to long (one order);    else short_exit → close

Money is kept in integer units of ``tick × lot / den`` where ``den`` is a power of ten
that makes the fee rate and the starting balance whole: notional ``P·Q``, fee ``P·Q·num``,
P&L ``ΔP·Q·den``. Nothing is rounded, so converting back to Decimal gives exactly the
ledger's numbers. Liquidation, stops and limits are not modelled here; configurations that
need them run on the event path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numba
import numpy as np

from quantdesk.core.money import MONEY_CONTEXT
from quantdesk.core.orders import OrderSide
from quantdesk.core.portfolio import ExitReason, Fill, PositionSide, RoundTrip

_C = MONEY_CONTEXT

FLAT_NONE, GO_LONG, GO_SHORT, CLOSE = 0, 1, 2, 3


@numba.njit(cache=True)
def _decide(sign: int, le: bool, lx: bool, se: bool, sx: bool) -> int:
    if sign == 0:
        if le:
            return GO_LONG
        if se:
            return GO_SHORT
        return FLAT_NONE
    if sign > 0:
        if se:
            return GO_SHORT
        if lx:
            return CLOSE
        return FLAT_NONE
    if le:
        return GO_LONG
    if sx:
        return CLOSE
    return FLAT_NONE


@numba.njit(cache=True)
def _simulate(opens, closes, le, lx, se, sx, wallet0, num, den, lev, fnum, fden, scale, cap):
    n = opens.shape[0]
    # trade records: entry index, exit index, signed lots, entry ticks, exit ticks. ``cap``
    # bounds the trade count (every trade needs a signal bar), so the arrays never grow: growing
    # them in the loop made numba refcount them on every bar, which cost 10x the loop itself.
    t_entry = np.empty(cap, np.int64)
    t_exit = np.empty(cap, np.int64)
    t_qty = np.empty(cap, np.int64)
    t_ep = np.empty(cap, np.int64)
    t_xp = np.empty(cap, np.int64)
    ntr = 0
    equity = np.empty(n, np.float64)
    wallet = wallet0
    pos = 0  # signed lots
    entry = 0  # entry price ticks
    entry_i = 0
    pending = FLAT_NONE
    for i in range(n):
        if pending != FLAT_NONE:
            p = opens[i]
            if pos != 0:
                q = pos if pos > 0 else -pos
                # close: realize P&L, pay the exit fee
                wallet += (p - entry) * pos * den - p * q * num
                t_entry[ntr] = entry_i
                t_exit[ntr] = i
                t_qty[ntr] = pos
                t_ep[ntr] = entry
                t_xp[ntr] = p
                ntr += 1
                pos = 0
            if pending == GO_LONG or pending == GO_SHORT:
                avail = wallet if wallet > 0 else 0
                lots = (avail * fnum * lev) // (p * (den + lev * num) * fden)
                if lots > 0:
                    wallet -= p * lots * num
                    pos = lots if pending == GO_LONG else -lots
                    entry = p
                    entry_i = i
            pending = FLAT_NONE
        c = closes[i]
        equity[i] = (wallet + (c - entry) * pos * den) * scale
        sign = 1 if pos > 0 else (-1 if pos < 0 else 0)
        pending = _decide(sign, le[i], lx[i], se[i], sx[i])
    return (t_entry[:ntr].copy(), t_exit[:ntr].copy(), t_qty[:ntr].copy(), t_ep[:ntr].copy(), t_xp[:ntr].copy(),
            equity, wallet, pos, entry)


@dataclass(frozen=True, slots=True)
class FastResult:
    """Trades as integer arrays (indices, signed lots, tick prices) plus the exact final state.

    Money in integer units of ``unit = tick·lot/den``: a trade's fee is ``P·|Q|·num`` units,
    its gross P&L ``ΔP·Q·den`` units. :meth:`trade_fields` turns the arrays into the float
    statistics inputs and :meth:`round_trips` into exact Decimal trades and fills, on demand.
    """

    entry_index: np.ndarray
    exit_index: np.ndarray
    lots: np.ndarray
    entry_ticks: np.ndarray
    exit_ticks: np.ndarray
    equity: np.ndarray
    wallet_units: int
    position_lots: int
    entry_price_ticks: int
    unit: Decimal  # value of one money unit
    den: int
    num: int = 0
    tick: Decimal = Decimal(1)
    lot: Decimal = Decimal(1)

    def final_equity(self, last_close_ticks: int) -> Decimal:
        units = self.wallet_units + (last_close_ticks - self.entry_price_ticks) * self.position_lots * self.den
        return _C.multiply(Decimal(units), self.unit)

    def trade_fields(self, time_ns: np.ndarray) -> dict[str, np.ndarray]:
        """Per-trade floats for statistics, each equal to ``float()`` of the exact Decimal.

        Keys: ``sign``, ``quantity``, ``entry_price``, ``exit_price``, ``commission`` (entry
        fee + exit fee, summed as floats), ``initial_risk`` (NaN: no stops here) and
        ``duration_s`` (from microsecond timestamps, as ``timedelta.total_seconds``).
        """
        qty = np.abs(self.lots)
        us = time_ns // 1000
        return {
            "sign": np.sign(self.lots).astype(np.float64),
            "quantity": exact_floats(qty, self.lot),
            "entry_price": exact_floats(self.entry_ticks, self.tick),
            "exit_price": exact_floats(self.exit_ticks, self.tick),
            "commission": exact_floats(_product(self.entry_ticks, qty, self.num), self.unit)
            + exact_floats(_product(self.exit_ticks, qty, self.num), self.unit),
            "initial_risk": np.full(len(qty), np.nan),
            "duration_s": (us[self.exit_index] - us[self.entry_index]).astype(np.float64) / 1e6,
        }

    def round_trips(self, *, time_ns: np.ndarray, symbol: str, currency: str, strategy: str | None,
                    leverage: int, fee_rate: Decimal) -> tuple[list[RoundTrip], list[Fill]]:
        """Build the exact Decimal trades and their entry/exit fills (what the ledger would book)."""
        tick, lot = self.tick, self.lot
        at: dict[int, datetime] = {}
        for i in np.union1d(self.entry_index, self.exit_index).tolist():
            seconds, rem = divmod(int(time_ns[i]), 1_000_000_000)
            at[i] = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rem // 1000)
        price: dict[int, Decimal] = {}
        trades: list[RoundTrip] = []
        fills: list[Fill] = []
        long, short, buy, sell, signal = PositionSide.LONG, PositionSide.SHORT, OrderSide.BUY, OrderSide.SELL, \
            ExitReason.SIGNAL
        mul = _C.multiply
        for k, (ei, xi, q, ep, xp) in enumerate(zip(self.entry_index.tolist(), self.exit_index.tolist(),
                                                     self.lots.tolist(), self.entry_ticks.tolist(),
                                                     self.exit_ticks.tolist(), strict=True)):
            qty = mul(Decimal(abs(q)), lot)
            entry = price.get(ep)
            if entry is None:
                entry = price[ep] = mul(Decimal(ep), tick)
            exit_ = price.get(xp)
            if exit_ is None:
                exit_ = price[xp] = mul(Decimal(xp), tick)
            entry_fee = mul(mul(qty, entry), fee_rate)
            exit_fee = mul(mul(qty, exit_), fee_rate)
            trades.append(RoundTrip(
                id=f"trade_{k + 1}", symbol=symbol, side=long if q > 0 else short, quantity=qty,
                entry_price=entry, exit_price=exit_, entry_at=at[ei], exit_at=at[xi], entry_fee=entry_fee,
                exit_fee=exit_fee, strategy=strategy, exit_reason=signal, initial_risk=None, leverage=leverage,
            ))
            side, other = (buy, sell) if q > 0 else (sell, buy)
            fills.append(Fill(f"fast_{2 * k + 1}", "", symbol, side, qty, entry, entry_fee, currency, at[ei]))
            fills.append(Fill(f"fast_{2 * k + 2}", "", symbol, other, qty, exit_, exit_fee, currency, at[xi]))
        return trades, fills


def _product(a: np.ndarray, b: np.ndarray, c: int) -> np.ndarray:
    # int64 when the product cannot overflow, else exact Python ints (an object array)
    if not a.size:
        return a.copy()
    if int(np.abs(a).max()) * int(np.abs(b).max()) * abs(c) < 2**63:
        return a * b * c
    return np.array([x * y * c for x, y in zip(a.tolist(), b.tolist(), strict=True)], dtype=object)


def exact_floats(values: np.ndarray, scale: Decimal) -> np.ndarray:
    """Return ``float(Decimal(v) * scale)`` for each integer ``v``, correctly rounded.

    Vectorised when exact: ``v·m`` (``scale = m·10^-e``) fits a double's 53-bit mantissa and
    ``10^e`` is an exact double (e ≤ 22), so one IEEE division rounds once, as ``float(Decimal)``
    does. Otherwise falls back to Decimal per element.
    """
    v = np.asarray(values)
    if v.dtype == object:
        return np.array([float(_C.multiply(Decimal(x), scale)) for x in v.tolist()], dtype=np.float64)
    v = v.astype(np.int64, copy=False)
    sign, digits, exp = scale.as_tuple()
    m = int("".join(map(str, digits))) * (-1 if sign else 1)
    big = int(np.abs(v).max()) if v.size else 0
    if isinstance(exp, int):
        if exp >= 0 and big * abs(m) * 10**exp < 2**53:
            return (v * (m * 10**exp)).astype(np.float64)
        if exp < 0 and -exp <= 22 and big * abs(m) < 2**53:
            return (v * m).astype(np.float64) / float(10 ** -exp)
    return np.array([float(_C.multiply(Decimal(x), scale)) for x in v.tolist()], dtype=np.float64)


def money_scale(rate: Decimal, initial: Decimal, tick: Decimal, lot: Decimal) -> tuple[int, int]:
    """Return ``(num, den)``: ``rate = num/den`` with ``den`` a power of ten that also makes
    ``initial / (tick·lot/den)`` whole."""
    den = 1
    for _ in range(30):
        num = _C.multiply(rate, Decimal(den))
        units = _C.divide(_C.multiply(initial, Decimal(den)), _C.multiply(tick, lot))
        if num == num.to_integral_value() and units == units.to_integral_value():
            return int(num), den
        den *= 10
    raise ValueError(f"cannot represent fee rate {rate} and balance {initial} exactly in integers")


def run_fast(
    *,
    opens: np.ndarray,
    closes: np.ndarray,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray | None,
    short_exit: np.ndarray | None,
    initial_balance: Decimal,
    fee_rate: Decimal,
    tick: Decimal,
    lot: Decimal,
    leverage: int = 1,
    fraction: Decimal = Decimal(1),
) -> FastResult:
    """Simulate signal trading on integer-tick arrays; see the module docstring for the rules."""
    num, den = money_scale(fee_rate, initial_balance, tick, lot)
    unit = _C.divide(_C.multiply(tick, lot), Decimal(den))
    wallet0 = int(_C.divide(initial_balance, unit))
    frac = fraction.as_integer_ratio()
    n = len(opens)
    zeros = np.zeros(n, dtype=np.bool_)
    se = zeros if short_entry is None else np.asarray(short_entry, dtype=np.bool_)
    sx = zeros if short_exit is None else np.asarray(short_exit, dtype=np.bool_)
    if wallet0 * max(frac[0], 1) * leverage > 2**62:
        raise OverflowError("balance too large for the fast path's 64-bit integers; use the event path")
    le = np.asarray(long_entry, dtype=np.bool_)
    lx = np.asarray(long_exit, dtype=np.bool_)
    # every trade closes on a bar after a signal bar: the count of signal bars bounds the trades
    cap = int(np.count_nonzero(le | lx | se | sx)) + 1
    out = _simulate(np.asarray(opens, dtype=np.int64), np.asarray(closes, dtype=np.int64), le, lx, se, sx,
                    wallet0, num, den, leverage, frac[0], frac[1], float(unit), cap)
    return FastResult(out[0], out[1], out[2], out[3], out[4], out[5], int(out[6]), int(out[7]), int(out[8]),
                      unit, den, num, tick, lot)
