"""Builders for the ledger persistence tests: instruments, paper kernels over a SqlLedgerStore, views."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from quantdesk.adapters.db import tables
from quantdesk.adapters.db.ledger import SqlLedgerStore, create_trading_account
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.ports import ListEventBus

D = Decimal
T0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
BTC = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "BTCUSDT", "USDT",
                 D("0.1"), D("0.001"), max_leverage=125)
ETH = Instrument(InstrumentId(Venue.CRYPTO, "ETH", "USDT"), InstrumentKind.PERPETUAL, "ETHUSDT", "USDT",
                 D("0.01"), D("0.01"), max_leverage=50)
TRADING_TABLES = [t for name, t in tables.metadata.tables.items() if name.startswith("trading_")]


def new_kernel(store: Any, *, balance: str = "100000", fee: str = "0.0004", leverage: int = 3,
               clock: SimulatedClock | None = None) -> Kernel:
    """A paper kernel on BTCUSDT and ETHUSDT (no prices yet) writing to ``store``."""
    kernel = Kernel(KernelConfig("USDT", D(balance), FeeSchedule(D(fee) / 2, D(fee)), leverage, D("0.005")),
                    clock=clock or SimulatedClock(T0), store=store, bus=ListEventBus())
    for inst in (BTC, ETH):
        kernel.add_market(inst, PaperBroker(lot_size=inst.lot_size))
    return kernel


def new_account(engine: sa.Engine, balance: str = "100000") -> SqlLedgerStore:
    account = create_trading_account(engine, currency="USDT", initial_balance=D(balance), created_at=T0)
    return SqlLedgerStore(engine, account.id)


def view(kernel: Kernel) -> dict[str, Any]:
    """Everything a user sees of a kernel, as comparable values (Decimals compare by value)."""
    acct = kernel.ledger.account
    return {
        "positions": {s: dataclasses.asdict(p) for s, p in acct.positions.items()},
        "open_orders": sorted((dataclasses.asdict(o) for o in kernel.open_orders()), key=lambda o: o["id"]),
        "working": {s: [(w.order.id, w.lots, w.kind, w.limit, w.stop, w.protective, w.sized_later, w.reason,
                         w.triggered) for w in m.broker.working] for s, m in kernel.markets.items()},
        "protective": {s: sorted((k, w.order.id) for k, w in m.protective.items()) for s, m in kernel.markets.items()},
        "balances": kernel.ledger.account.balances(),
        "wallets": dict(acct.wallets),
        "totals": (acct.deposited, acct.realized_pnl, acct.fees_paid),
        "leverage": {s: m.leverage for s, m in kernel.markets.items()},
        "equity": kernel.equity(),
        "available": kernel.available_margin(),
        "ids": kernel.ids.counters(),
    }


def dump_account(engine: sa.Engine, account_id: int) -> dict[str, list]:
    """Every stored row of one account, per trading table (to prove a failed commit left no trace)."""
    out = {}
    with engine.connect() as conn:
        for t in TRADING_TABLES:
            key = t.c.id if t.name == "trading_accounts" else t.c.account_id
            out[t.name] = sorted(tuple(map(str, r)) for r in conn.execute(sa.select(t).where(key == account_id)))
    return out


def install_failure(engine: sa.Engine) -> None:
    """Make every UPDATE of trading_accounts fail: the last statement of SqlLedgerStore.commit."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE OR REPLACE FUNCTION qd_fail() RETURNS trigger AS $$ "
                                 "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text("CREATE TRIGGER qd_fail BEFORE UPDATE ON trading_accounts "
                                 "FOR EACH ROW EXECUTE FUNCTION qd_fail()"))
        else:
            conn.execute(sa.text("CREATE TRIGGER qd_fail BEFORE UPDATE ON trading_accounts "
                                 "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"))


def remove_failure(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TRIGGER IF EXISTS qd_fail ON trading_accounts"))
        else:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS qd_fail"))
