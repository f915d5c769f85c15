"""SqlLedgerStore: exact round trips, one transaction per batch, queries; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_kit import T0, dump_account, install_failure, new_account, new_kernel, remove_failure, view

from quantdesk.core.commands import CancelOrder, ClosePosition, SetLeverage, SubmitOrder
from quantdesk.core.errors import ConflictError, NotFoundError
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import (
    Balance,
    ExitReason,
    Fill,
    Liquidity,
    Lot,
    Position,
    PositionSide,
    RoundTrip,
)
from quantdesk.engine.ports import LedgerBatch

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def trade_a_little(kernel):
    """Multi-lot positions closed in parts: pro-rata fee splits with 60 significant digits."""
    kernel.on_price("BTCUSDT", D("50000"))
    kernel.on_price("ETHUSDT", D("3000"))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.007"), stop_loss=D("45000"), take_profit=D("60000")))
    kernel.on_price("BTCUSDT", D("50123.4"))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.011")))
    kernel.submit(SubmitOrder("BTCUSDT", SELL, quantity=D("0.013"), reduce_only=True))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.002")))
    kernel.submit(SubmitOrder("ETHUSDT", SELL, quantity=D("0.33")))
    kernel.on_price("ETHUSDT", D("2999.99"))
    kernel.submit(SubmitOrder("ETHUSDT", BUY, OrderType.LIMIT, D("0.07"), price=D("2950.01")))
    kernel.on_price("ETHUSDT", D("2950"))
    kernel.submit(SubmitOrder("BTCUSDT", SELL, OrderType.LIMIT, D("0.001"), price=D("70000"), client_order_id="c-1",
                              tag="t", strategy="manual"))


def test_kernel_state_round_trips_exactly(db):
    store = new_account(db)
    kernel = new_kernel(store)
    trade_a_little(kernel)
    # derived amounts are stored exactly too (margin at leverage 3 does not terminate)
    records = {r.id: r for r in store.list_positions()}
    for p in kernel.ledger.account.positions.values():
        assert (records[p.id].margin, records[p.id].entry_price) == (p.margin, p.entry_price)
    for order in kernel.orders.values():
        assert dataclasses.asdict(store.get_order(order.id)) == dataclasses.asdict(order)
        assert store.fills_for_order(order.id) == [f for f in kernel.ledger.fills if f.order_id == order.id]
    page = store.list_trades()
    assert page.total == len(kernel.ledger.trades) and page.trades == kernel.ledger.trades[::-1]
    snap = store.load()
    acct = kernel.ledger.account
    assert [dataclasses.asdict(p) for p in snap.positions] == [dataclasses.asdict(p) for p in acct.positions.values()]
    assert snap.wallets == acct.wallets
    assert (snap.deposited, snap.realized_pnl, snap.fees_paid) == (acct.deposited, acct.realized_pnl, acct.fees_paid)
    assert store.balances() == acct.balances()
    assert snap.id_counters == kernel.ids.counters()


amounts = st.builds(lambda n, k: D(n).scaleb(-k), st.integers(1, 10**40), st.integers(0, 45))


@given(values=st.lists(amounts, min_size=12, max_size=12), lev=st.integers(1, 125))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_money_field_round_trips_exactly(db, values, lev):
    store = new_account(db)
    v = iter(values)
    at = T0 + timedelta(microseconds=123457)
    order = Order("ord_7", "BTCUSDT", BUY, OrderType.STOP_LIMIT, next(v), at, price=next(v), stop_price=next(v),
                  time_in_force=TimeInForce.IOC, equity_fraction=None, tag="x")
    order.transition(OrderStatus.ACCEPTED, at)
    order.record_fill(order.quantity, next(v), next(v), at)
    fill = Fill("fill_9", order.id, "BTCUSDT", BUY, order.quantity, order.avg_fill_price, order.fees, "USDT", at,
                Liquidity.MAKER, ExitReason.TAKE_PROFIT)
    position = Position("pos_3", "BTCUSDT", PositionSide.SHORT, lev, at, stop_loss=next(v), strategy="s",
                        realized_pnl=-next(v), fees_paid=next(v), net_filled=-D("1.5"), updated_at=at)
    position.lots = [Lot(next(v), next(v), next(v), at, None), Lot(D(1), D(2), D(0), at, next(v))]
    trip = RoundTrip("trade_4", "BTCUSDT", PositionSide.LONG, fill.quantity, fill.price, position.lots[0].price, at,
                     at, fill.fee, position.lots[0].fee, None, ExitReason.LIQUIDATION, position.fees_paid, lev)
    balance = Balance("USDT", position.lots[0].quantity, position.lots[0].fee)
    store.commit(LedgerBatch(1, [order], [fill], [position], [], [trip], [balance], -position.realized_pnl))
    assert dataclasses.asdict(store.get_order("ord_7")) == dataclasses.asdict(order)
    assert store.fills_for_order("ord_7") == [fill]
    assert store.list_trades().trades == [trip]
    snap = store.load()
    assert [dataclasses.asdict(p) for p in snap.positions] == [dataclasses.asdict(position)]
    assert snap.wallets == {"USDT": balance.total} and store.balances() == [balance]
    assert snap.fees_paid == fill.fee and snap.realized_pnl == trip.gross_pnl
    record = store.list_positions()[0]
    assert (record.margin, record.entry_price) == (position.margin, position.entry_price)
    assert store.list_trades().trades[0].pnl_pct == trip.pnl_pct
    assert store.journal()[0].equity == -position.realized_pnl


def test_failed_last_statement_leaves_no_trace_and_the_kernel_as_it_was(db):
    store = new_account(db)
    kernel = new_kernel(store)
    trade_a_little(kernel)
    stored, seen = dump_account(db, store.account_id), view(kernel)
    install_failure(db)  # the account-totals UPDATE, the last statement of commit, now fails
    try:
        with pytest.raises(sa.exc.DBAPIError, match="injected failure"):
            kernel.handle(ClosePosition("ETHUSDT"))
        with pytest.raises(sa.exc.DBAPIError):
            kernel.handle(SubmitOrder("BTCUSDT", BUY, quantity=D("0.002"), stop_loss=D("40000")))
    finally:
        remove_failure(db)
    assert dump_account(db, store.account_id) == stored
    assert view(kernel) == seen and kernel.failure is None
    # the kernel goes on as if the failed commands never happened: same ids, same result
    order = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.002")))
    assert order.status is OrderStatus.FILLED and order.id == f"ord_{seen['ids']['ord'] + 1}"
    assert store.get_order(order.id).status is OrderStatus.FILLED


def test_constraint_violation_mid_batch_stores_nothing_of_it(db):
    store = new_account(db)
    kernel = new_kernel(store)
    trade_a_little(kernel)
    stored = dump_account(db, store.account_id)
    first_trade = store.list_trades().trades[-1]
    order = Order("ord_99", "BTCUSDT", SELL, OrderType.MARKET, D("0.001"), T0)
    order.transition(OrderStatus.ACCEPTED, T0)
    fill = Fill("fill_99", "ord_99", "BTCUSDT", SELL, D("0.001"), D("50000"), D("0.02"), "USDT", T0)
    # orders, fills and positions go in before the trades; a trade id already stored then violates the key
    batch = LedgerBatch(kernel._sequence + 1, [order], [fill], list(kernel.ledger.account.positions.values()),
                        trades=[first_trade], balances=[Balance("USDT", D(1), D(0))])
    with pytest.raises(sa.exc.IntegrityError):
        store.commit(batch)
    assert dump_account(db, store.account_id) == stored
    assert store.get_order("ord_99") is None and store.fills_for_order("ord_99") == []


def test_a_batch_sequence_is_committed_once(db):
    store = new_account(db)
    kernel = new_kernel(store)
    kernel.on_price("BTCUSDT", D("50000"))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.001")))
    stored = dump_account(db, store.account_id)
    twin = new_kernel(store)  # a second writer that was not restored starts at sequence 1 again
    twin.on_price("BTCUSDT", D("50000"))
    with pytest.raises(sa.exc.IntegrityError):
        twin.handle(SubmitOrder("BTCUSDT", SELL, quantity=D("0.001")))
    assert dump_account(db, store.account_id) == stored


def test_market_data_commit_failure_fails_stop_until_restored(db):
    store = new_account(db)
    kernel = new_kernel(store)
    kernel.on_price("BTCUSDT", D("50000"))
    limit = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.01"), price=D("49000")))
    install_failure(db)
    try:
        with pytest.raises(sa.exc.DBAPIError):
            kernel.on_price("BTCUSDT", D("48900"))  # fills the limit in memory; the commit fails
        assert kernel.failure is not None
        with pytest.raises(ConflictError) as err:
            kernel.handle(SubmitOrder("BTCUSDT", BUY, quantity=D("0.001")))
        assert err.value.code == "ENGINE_HALTED"
        with pytest.raises(ConflictError):
            kernel.on_price("BTCUSDT", D("48000"))
    finally:
        remove_failure(db)
    kernel.restore(store.load())
    assert [o.id for o in kernel.open_orders()] == [limit.id] and kernel.position("BTCUSDT") is None
    kernel.on_price("BTCUSDT", D("48900"))
    assert store.get_order(limit.id).status is OrderStatus.FILLED
    assert kernel.position("BTCUSDT").quantity == D("0.01")


def test_queries_filter_page_and_count(db):
    store = new_account(db)
    kernel = new_kernel(store)
    trade_a_little(kernel)
    kernel.handle(SetLeverage("ETHUSDT", 7))
    resting = kernel.open_orders("BTCUSDT")[-1]
    kernel.handle(CancelOrder(resting.id))
    orders = store.list_orders()
    assert [o.id for o in orders] == list(kernel.orders)[::-1]  # newest first
    assert {o.id for o in store.list_orders(open_only=True)} == {o.id for o in kernel.open_orders()}
    assert [o.id for o in store.list_orders(status="cancelled", symbol="BTCUSDT")][0] == resting.id
    assert all(o.symbol == "ETHUSDT" for o in store.list_orders(symbol="ETHUSDT"))
    assert len(store.list_orders(limit=2, offset=1)) == 2
    assert store.get_order("ord_404") is None
    everything = store.list_trades(limit=1000)
    assert everything.total == len(kernel.ledger.trades) >= 3
    page = store.list_trades(limit=1, offset=1)
    assert page.total == everything.total and page.trades == everything.trades[1:2]
    last = everything.trades[0].exit_at
    assert store.list_trades(start=last + timedelta(seconds=1)).total == 0
    assert store.list_trades(end=last + timedelta(seconds=1)).total == everything.total
    assert store.load().leverage == {"ETHUSDT": 7}
    assert {p.status for p in store.list_positions(status=None)} <= {"open", "closed"}
    assert store.journal(after=0, limit=1000)[-1].events[-1]["event"] == "OrderCancelled"


def test_load_of_an_unknown_account_is_not_found(db):
    store = new_account(db)
    with pytest.raises(NotFoundError):
        store.load(store.account_id + 1000)
