"""Rebuild a kernel's state: after a restart (from a LedgerSnapshot) or after a failed commit.

Two operations, both on a :class:`~quantdesk.engine.kernel.Kernel`:

- :func:`restore` loads what a :class:`~quantdesk.engine.ports.LedgerSource` persisted:
  balances, open positions (with their FIFO lots), working orders re-armed in each market's
  broker in their original order (protective stop loss / take profit / liquidation orders
  re-registered as such), per-symbol leverage, and the id counters, so no id is reused.
- :func:`checkpoint` / :func:`rollback` capture the mutable state before a command and put
  it back, in place (the same Order and Position objects), when the store refuses the
  command's batch. A command is one transaction: it fully happens or leaves no trace.

What neither restores: strategy objects' own state, and the risk manager's daily counters
and kill switch after a restart (they are not in the ledger; a rollback does restore them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from quantdesk.core.errors import ConfigError
from quantdesk.core.orders import Order, OrderType
from quantdesk.core.portfolio import ExitReason, Position
from quantdesk.engine.ports import LedgerBatch, LedgerSnapshot

if TYPE_CHECKING:  # the kernel calls in here; importing it at run time would make a cycle
    from quantdesk.engine.kernel import Kernel

#: id prefix of a protective order → (its key in the market's protective map, exit reason)
PROTECTIVE = {
    "sl": ExitReason.STOP_LOSS,
    "tp": ExitReason.TAKE_PROFIT,
    "liq": ExitReason.LIQUIDATION,
}

_ORDER_FIELDS = tuple(f.name for f in fields(Order))
_POSITION_FIELDS = tuple(f.name for f in fields(Position))


def protective_key(order: Order) -> str | None:
    """``sl``, ``tp`` or ``liq`` for a protective order the kernel created (by its id prefix), else None."""
    prefix = order.id.rpartition("_")[0]
    return prefix if prefix in PROTECTIVE else None


def restore(kernel: Kernel, snapshot: LedgerSnapshot) -> None:
    """Replace ``kernel``'s ledger state with ``snapshot`` and re-arm its working orders.

    The kernel must already have a market for every symbol in the snapshot (raises
    ConfigError naming the symbol otherwise). Orders and positions in the snapshot are used
    as they are (not copied). Marks are not part of the ledger: a position is valued at its
    entry price until the next price arrives. Clears a fail-stop.
    """
    if snapshot.currency != kernel.config.currency:
        raise ConfigError(f"snapshot currency {snapshot.currency} does not match the kernel's "
                          f"{kernel.config.currency}")
    symbols = {p.symbol for p in snapshot.positions} | {o.symbol for o in snapshot.open_orders} \
        | set(snapshot.leverage)
    missing = sorted(s for s in symbols if s not in kernel.markets)
    if missing:
        raise ConfigError(f"cannot restore: no market for {', '.join(missing)}; add_market first")
    ledger = kernel.ledger
    acct = ledger.account
    acct.wallets = dict(snapshot.wallets)
    acct.deposited = snapshot.deposited
    acct.realized_pnl = snapshot.realized_pnl
    acct.fees_paid = snapshot.fees_paid
    acct.positions = {p.symbol: p for p in snapshot.positions}
    acct.reserved = {}
    ledger.fills = []
    ledger.trades = list(snapshot.trades)
    ledger.snapshots = []
    kernel.ids.advance(snapshot.id_counters)
    kernel._sequence = snapshot.sequence
    kernel.orders = {o.id: o for o in snapshot.open_orders}
    kernel._fractions = {}
    for symbol, m in kernel.markets.items():
        m.broker.engine.working.clear()
        m.protective.clear()
        if symbol in snapshot.leverage:
            m.leverage = snapshot.leverage[symbol]
    for order in snapshot.open_orders:
        m = kernel.markets[order.symbol]
        key = protective_key(order)
        if key is None:
            w = kernel._working(m, order)
            if order.equity_fraction is not None:
                kernel._fractions[order.id] = order.equity_fraction
        else:
            w = kernel._working(m, order, reason=PROTECTIVE[key], protective=order.type is OrderType.STOP_MARKET,
                                closes_position=True)
            m.protective[key] = w
        w.triggered = order.triggered
        m.broker.engine.add(w)
    kernel._batch = LedgerBatch(0)
    kernel._new_protective = []
    kernel.failure = None


@dataclass(slots=True)
class Checkpoint:
    """The kernel's mutable state before a command (see :func:`checkpoint`)."""

    orders: dict[str, Order]
    order_values: list[tuple[Order, dict[str, Any]]]
    wallets: dict
    totals: tuple
    positions: dict[str, Position]
    position_values: list[tuple[Position, dict[str, Any]]]
    reserved: dict
    lengths: tuple[int, int, int]
    ids: dict[str, int]
    sequence: int
    fractions: dict
    markets: list[tuple[Any, int, dict, list, list[tuple[Any, int, bool, bool]]]]
    risk: dict[str, Any]


def _values(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: copy.deepcopy(getattr(obj, n)) for n in names}


def checkpoint(kernel: Kernel) -> Checkpoint:
    """Capture everything a command may change: open orders, account, positions, working orders, ids, risk."""
    ledger = kernel.ledger
    acct = ledger.account
    markets = []
    for m in kernel.markets.values():
        working = m.broker.engine.working
        markets.append((m, m.leverage, dict(m.protective), list(working),
                        [(w, w.lots, w.triggered, w.seen) for w in working]))
    return Checkpoint(
        orders=dict(kernel.orders),
        # terminal orders never change again; only open ones can be touched by a command
        order_values=[(o, _values(o, _ORDER_FIELDS)) for o in kernel.orders.values() if o.status.is_open],
        wallets=dict(acct.wallets),
        totals=(acct.deposited, acct.realized_pnl, acct.fees_paid),
        positions=dict(acct.positions),
        position_values=[(p, _values(p, _POSITION_FIELDS)) for p in acct.positions.values()],
        reserved=dict(acct.reserved),
        lengths=(len(ledger.fills), len(ledger.trades), len(ledger.snapshots)),
        ids=kernel.ids.counters(),
        sequence=kernel._sequence,
        fractions=dict(kernel._fractions),
        markets=markets,
        risk={k: v for k, v in vars(kernel.risk).items() if k != "limits"},
    )


def rollback(kernel: Kernel, cp: Checkpoint) -> None:
    """Put ``kernel`` back exactly as it was at ``cp``; the same objects keep their identity."""
    for order, values in cp.order_values:
        for name, value in values.items():
            setattr(order, name, value)
    kernel.orders.clear()
    kernel.orders.update(cp.orders)
    ledger = kernel.ledger
    acct = ledger.account
    acct.wallets.clear()
    acct.wallets.update(cp.wallets)
    acct.deposited, acct.realized_pnl, acct.fees_paid = cp.totals
    for position, values in cp.position_values:
        for name, value in values.items():
            setattr(position, name, value)
    acct.positions.clear()
    acct.positions.update(cp.positions)
    acct.reserved.clear()
    acct.reserved.update(cp.reserved)
    n_fills, n_trades, n_snaps = cp.lengths
    del ledger.fills[n_fills:], ledger.trades[n_trades:], ledger.snapshots[n_snaps:]
    kernel.ids.reset(cp.ids)
    kernel._sequence = cp.sequence
    kernel._fractions.clear()
    kernel._fractions.update(cp.fractions)
    for m, leverage, protective, working, states in cp.markets:
        m.leverage = leverage
        m.protective.clear()
        m.protective.update(protective)
        m.broker.engine.working[:] = working  # keep the list object: the backtest loop holds it
        for w, lots, triggered, seen in states:
            w.lots, w.triggered, w.seen = lots, triggered, seen
    for name, value in cp.risk.items():
        setattr(kernel.risk, name, value)
    kernel._batch = LedgerBatch(0)
    kernel._new_protective = []


__all__ = ["Checkpoint", "PROTECTIVE", "checkpoint", "protective_key", "restore", "rollback"]
