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
from decimal import Decimal

import numba
import numpy as np

from quantdesk.core.money import MONEY_CONTEXT

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
def _simulate(opens, closes, le, lx, se, sx, wallet0, num, den, lev, fnum, fden, scale):
    n = opens.shape[0]
    # trade records: entry index, exit index, signed lots, entry ticks, exit ticks
    cap = 16
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
                if ntr == cap:
                    cap *= 2
                    t_entry = np.concatenate((t_entry, np.empty(cap - ntr, np.int64)))
                    t_exit = np.concatenate((t_exit, np.empty(cap - ntr, np.int64)))
                    t_qty = np.concatenate((t_qty, np.empty(cap - ntr, np.int64)))
                    t_ep = np.concatenate((t_ep, np.empty(cap - ntr, np.int64)))
                    t_xp = np.concatenate((t_xp, np.empty(cap - ntr, np.int64)))
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
    return t_entry[:ntr], t_exit[:ntr], t_qty[:ntr], t_ep[:ntr], t_xp[:ntr], equity, wallet, pos, entry


@dataclass(frozen=True, slots=True)
class FastResult:
    """Trades as integer arrays (indices, signed lots, tick prices) plus the exact final state."""

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

    def final_equity(self, last_close_ticks: int) -> Decimal:
        units = self.wallet_units + (last_close_ticks - self.entry_price_ticks) * self.position_lots * self.den
        return _C.multiply(Decimal(units), self.unit)


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
    out = _simulate(np.asarray(opens, dtype=np.int64), np.asarray(closes, dtype=np.int64),
                    np.asarray(long_entry, dtype=np.bool_), np.asarray(long_exit, dtype=np.bool_), se, sx,
                    wallet0, num, den, leverage, frac[0], frac[1], float(unit))
    return FastResult(out[0], out[1], out[2], out[3], out[4], out[5], int(out[6]), int(out[7]), int(out[8]),
                      unit, den)
