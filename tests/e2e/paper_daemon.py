"""A small paper-trading process for the kill -9 test: a kernel, a PaperBroker per instrument, a SqlLedgerStore.

    python paper_daemon.py --db URL init                 migrate, create an account, print {"account": id}
    python paper_daemon.py --db URL --account N run      run SCRIPT from step 0
    python paper_daemon.py --db URL --account N recover  restore from the store, print {"recovered": state},
                                                         read "resume K", replay the marks, run from step K

``run`` and ``recover`` execute one step per line read on stdin and print one JSON line per step,
AFTER the step's batch is committed: {"step": i, "state": {...}}. After the last step they place one
more market order and print {"step": "extra", "order": {...}, "state": {...}}. Amounts are decimal
text (exact). Time is simulated (one second per step) so two runs of the script are identical.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantdesk.adapters.db.engine import make_engine, migrate
from quantdesk.adapters.db.ledger import SqlLedgerStore, create_trading_account
from quantdesk.core.commands import CancelOrder, ClosePosition, SetLeverage, SubmitOrder
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.core.orders import OrderSide, OrderType
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.matching import PaperBroker

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = datetime(2024, 5, 6, 12, tzinfo=UTC)
BTC = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "BTCUSDT", "USDT",
                 D("0.1"), D("0.001"), max_leverage=125)
ETH = Instrument(InstrumentId(Venue.CRYPTO, "ETH", "USDT"), InstrumentKind.PERPETUAL, "ETHUSDT", "USDT",
                 D("0.01"), D("0.01"), max_leverage=50)

# ("price", symbol, price) | ("cmd", command) | ("cancel_last", symbol): cancel the newest open user order
SCRIPT: list[tuple] = [
    ("price", "BTCUSDT", "50000"),
    ("price", "ETHUSDT", "3000"),
    ("cmd", SetLeverage("BTCUSDT", 5)),
    ("cmd", SubmitOrder("BTCUSDT", BUY, quantity=D("0.25"), stop_loss=D("46000"), take_profit=D("58000"))),
    ("cmd", SubmitOrder("ETHUSDT", BUY, OrderType.LIMIT, D("1.5"), price=D("2950"))),
    ("cmd", SubmitOrder("BTCUSDT", SELL, OrderType.STOP_MARKET, D("0.1"), stop_price=D("48000"), reduce_only=True)),
    ("cmd", SubmitOrder("ETHUSDT", SELL, quantity=D("2"))),
    ("price", "BTCUSDT", "50750.3"),
    ("cmd", SubmitOrder("BTCUSDT", BUY, quantity=D("0.1"))),
    ("price", "ETHUSDT", "2949.37"),
    ("cmd", SubmitOrder("BTCUSDT", SELL, OrderType.LIMIT, D("0.05"), price=D("52000"))),
    ("cmd", SubmitOrder("ETHUSDT", BUY, OrderType.STOP_MARKET, D("0.5"), stop_price=D("3100"))),
    ("price", "BTCUSDT", "52000.1"),
    ("cancel_last", "ETHUSDT"),
    ("cmd", SubmitOrder("BTCUSDT", SELL, quantity=D("0.1"), reduce_only=True)),
    ("price", "ETHUSDT", "2900.01"),
    ("cmd", ClosePosition("ETHUSDT")),
    ("price", "BTCUSDT", "47999.9"),
    ("cmd", SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.3"), price=D("47000"))),
    ("cmd", SubmitOrder("ETHUSDT", BUY, quantity=D("1.01"), take_profit=D("3333.33"))),
    ("price", "ETHUSDT", "3001.5"),
    ("cmd", SubmitOrder("ETHUSDT", SELL, OrderType.LIMIT, D("0.4"), price=D("3050"), reduce_only=True)),
]


def build(url: str, account: int, clock: SimulatedClock) -> tuple[Kernel, SqlLedgerStore]:
    store = SqlLedgerStore(make_engine(url), account)
    kernel = Kernel(KernelConfig("USDT", D("25000"), FeeSchedule(D("0.0002"), D("0.0005")), 2, D("0.004")),
                    clock=clock, store=store)
    for inst in (BTC, ETH):
        kernel.add_market(inst, PaperBroker(lot_size=inst.lot_size))
    return kernel, store


def step(kernel: Kernel, item: tuple) -> None:
    kind = item[0]
    if kind == "price":
        kernel.on_price(item[1], D(item[2]))
    elif kind == "cmd":
        kernel.handle(item[1])
    elif kind == "cancel_last":
        mine = [o for o in kernel.open_orders(item[1]) if o.id.startswith("ord_")]
        kernel.handle(CancelOrder(mine[-1].id))


def state(kernel: Kernel) -> dict:
    """What the test compares: open orders, positions with lots, balances, id counters, equity."""
    s = str
    acct = kernel.ledger.account
    return {
        "orders": sorted([[o.id, o.symbol, o.side.value, o.type.value, o.status.value, s(o.quantity), s(o.price),
                           s(o.stop_price), o.reduce_only, s(o.filled_quantity), s(o.filled_notional), s(o.fees),
                           o.triggered] for o in kernel.open_orders()]),
        "positions": sorted([[p.id, p.symbol, p.side.value, p.leverage, [[s(lot.quantity), s(lot.price), s(lot.fee)]
                                                                        for lot in p.lots],
                              s(p.realized_pnl), s(p.fees_paid), s(p.stop_loss), s(p.take_profit)]
                             for p in acct.positions.values()]),
        "balances": [[b.asset, s(b.free), s(b.locked)] for b in acct.balances()],
        "totals": [s(acct.deposited), s(acct.realized_pnl), s(acct.fees_paid)],
        "ids": kernel.ids.counters(),
        "equity": s(kernel.equity()),
    }


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(kernel: Kernel, clock: SimulatedClock, start: int) -> None:
    for i in range(start, len(SCRIPT)):
        if not sys.stdin.readline():
            return
        clock.set(T0 + timedelta(seconds=i + 1))
        step(kernel, SCRIPT[i])
        emit({"step": i, "state": state(kernel)})  # only now: the step's batch is committed
    if not sys.stdin.readline():
        return
    clock.set(T0 + timedelta(seconds=len(SCRIPT) + 1))
    order = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.002")))
    emit({"step": "extra", "order": [order.id, order.status.value, str(order.avg_fill_price)],
          "state": state(kernel)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--account", type=int)
    ap.add_argument("mode", choices=["init", "run", "recover"])
    args = ap.parse_args()
    if args.mode == "init":
        migrate(args.db)
        account = create_trading_account(make_engine(args.db), currency="USDT", initial_balance=D("25000"),
                                         name=f"crash-{datetime.now(UTC).timestamp()}", created_at=T0)
        emit({"account": account.id})
        return
    clock = SimulatedClock(T0)
    kernel, store = build(args.db, args.account, clock)
    start = 0
    if args.mode == "recover":
        kernel.restore(store.load())
        emit({"recovered": state(kernel)})
        start = int(sys.stdin.readline().split()[1])
        clock.set(T0 + timedelta(seconds=start))
        marks: dict[str, str] = {}
        for item in SCRIPT[:start]:
            if item[0] == "price":
                marks[item[1]] = item[2]
        for symbol, price in marks.items():  # prices are not in the ledger; the feed gives them again
            kernel.on_price(symbol, D(price))
        emit({"marks": state(kernel)})
    run(kernel, clock, start)


if __name__ == "__main__":
    main()
