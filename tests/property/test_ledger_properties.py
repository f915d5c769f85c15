"""Ledger and order-lifecycle invariants under random order and price sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.core.commands import SubmitOrder
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.core.market import Bar
from quantdesk.core.money import MONEY_CONTEXT as C
from quantdesk.core.orders import (
    TRANSITIONS,
    IllegalTransitionError,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from quantdesk.core.portfolio import Fill
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.ledger import Ledger
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.ports import MemoryLedgerStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BTC = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "BTCUSDT", "USDT",
                 Decimal("0.1"), Decimal("0.001"), max_leverage=125)

prices = st.integers(min_value=1_000, max_value=200_000).map(lambda t: Decimal(t) * Decimal("0.1"))
quantities = st.integers(min_value=1, max_value=5_000).map(lambda n: Decimal(n) * Decimal("0.001"))
fee_rates = st.sampled_from([Decimal(0), Decimal("0.0004"), Decimal("0.001"), Decimal("0.002")])


def _assert_balanced(ledger: Ledger, mark: Decimal) -> None:
    acct = ledger.account
    marks = {"BTCUSDT": mark}
    equity = acct.equity(marks)
    # cash + positions' value − fees = equity, in the margin form the ledger keeps
    assert C.subtract(C.add(C.add(acct.deposited, acct.realized_pnl), acct.unrealized_pnl(marks)),
                      acct.fees_paid) == equity
    assert C.add(acct.wallet, acct.unrealized_pnl(marks)) == equity


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), quantities, prices), min_size=1, max_size=40), fee_rates, prices)
def test_ledger_any_fill_sequence_keeps_equity_identity_and_quantity_sum(steps, rate, mark):
    ledger = Ledger("USDT", Decimal(1_000_000))
    signed_sum = Decimal(0)
    for k, (is_buy, qty, price) in enumerate(steps):
        side = OrderSide.BUY if is_buy else OrderSide.SELL
        fee = C.multiply(C.multiply(qty, price), rate)
        fill = Fill(f"f{k}", f"o{k}", "BTCUSDT", side, qty, price, fee, "USDT", T0 + timedelta(minutes=k))
        ledger.apply_fill(fill)
        signed_sum += qty if is_buy else -qty
        _assert_balanced(ledger, mark)
        _assert_balanced(ledger, price)
        assert ledger.signed_quantity("BTCUSDT") == signed_sum
    # closed trades + open lots account for every unit filled
    total_closed = sum((t.quantity for t in ledger.trades), Decimal(0))
    total_filled = sum((f.quantity for f in ledger.fills), Decimal(0))
    assert total_filled == 2 * total_closed + abs(signed_sum)


statuses = st.sampled_from(list(OrderStatus))


@settings(max_examples=300, deadline=None)
@given(st.lists(statuses, max_size=12))
def test_order_state_machine_refuses_every_illegal_move(targets):
    order = Order("o1", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, Decimal(1), T0)
    for k, target in enumerate(targets):
        before = order.status
        at = T0 + timedelta(seconds=k)
        if target in TRANSITIONS[before]:
            order.transition(target, at)
            assert order.status is target
        else:
            try:
                order.transition(target, at)
            except IllegalTransitionError:
                pass
            else:  # pragma: no cover
                raise AssertionError(f"{before} -> {target} was accepted")
            assert order.status is before
    # the recorded history is a walk through the table: no state was skipped
    walk = [status for status, _ in order.history]
    assert walk[0] is OrderStatus.NEW
    for a, b in zip(walk, walk[1:], strict=False):
        assert b in TRANSITIONS[a]


order_specs = st.tuples(
    st.booleans(),  # buy?
    st.sampled_from([OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_MARKET, OrderType.STOP_LIMIT]),
    quantities,
    st.integers(min_value=-50, max_value=50),  # price offset in ticks from the last price
    st.sampled_from(list(TimeInForce)),
    st.booleans(),  # reduce_only
)
bars = st.tuples(st.integers(-200, 200), st.integers(0, 300), st.integers(0, 300), st.integers(-200, 200))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(order_specs, max_size=3), bars), min_size=1, max_size=25),
       st.integers(min_value=1, max_value=20), fee_rates)
def test_kernel_random_orders_and_bars_keep_every_invariant(script, leverage, rate):
    store = MemoryLedgerStore()
    kernel = Kernel(KernelConfig("USDT", Decimal(100_000), FeeSchedule(rate / 2, rate), leverage,
                                 Decimal("0.005")), clock=SimulatedClock(T0), store=store)
    kernel.add_market(BTC, PaperBroker(lot_size=BTC.lot_size), leverage)
    last = 300_000  # ticks: 30,000.0
    kernel.on_price("BTCUSDT", Decimal(last) * BTC.tick_size)
    for step, (orders, (d_open, up, down, d_close)) in enumerate(script):
        for is_buy, kind, qty, offset, tif, reduce_only in orders:
            ref = Decimal(last + offset * 10) * BTC.tick_size
            price = ref if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
            stop = ref if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) else None
            kernel.handle(SubmitOrder("BTCUSDT", OrderSide.BUY if is_buy else OrderSide.SELL, kind, qty,
                                      price=price, stop_price=stop, time_in_force=tif, reduce_only=reduce_only))
            _check(kernel, store)
        o = max(last + d_open, 1000)
        c = max(last + d_close, 1000)
        h, low = max(o, c) + up, max(min(o, c) - down, 500)
        tick = BTC.tick_size
        kernel.on_bar("BTCUSDT", Bar(T0 + timedelta(minutes=step + 1), Decimal(o) * tick, Decimal(h) * tick,
                                     Decimal(low) * tick, Decimal(c) * tick, Decimal(10)))
        last = c
        _check(kernel, store)


def _check(kernel: Kernel, store: MemoryLedgerStore) -> None:
    ledger = kernel.ledger
    mark = kernel.mark("BTCUSDT")
    _assert_balanced(ledger, mark)
    # a position's quantity is the sum of its fills
    net = sum((f.signed_quantity for f in store.fills()), Decimal(0))
    assert ledger.signed_quantity("BTCUSDT") == net
    position = ledger.position("BTCUSDT")
    if position is not None:
        assert position.quantity > 0
    for order in kernel.orders.values():
        walk = [s for s, _ in order.history]
        assert walk[0] is OrderStatus.NEW
        for a, b in zip(walk, walk[1:], strict=False):
            assert b in TRANSITIONS[a]
        if order.status is OrderStatus.FILLED:
            assert order.filled_quantity == order.quantity
        assert order.filled_quantity <= (order.quantity or 0) or order.filled_quantity == 0
