"""Kernel.restore(store.load()) gives back the kernel that wrote the ledger, and it trades on identically."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_kit import BTC, ETH, new_account, new_kernel, view

from quantdesk.core.commands import CancelOrder, ClosePosition, SetLeverage, SubmitOrder
from quantdesk.core.errors import ConfigError, QuantdeskError
from quantdesk.core.orders import OrderSide, OrderType
from quantdesk.engine.kernel import Kernel, KernelConfig
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.ports import MemoryLedgerStore

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def setup_book(kernel):
    """Positions with several lots, brackets, liquidation orders, a triggered stop-limit, a sized-later order."""
    kernel.on_price("BTCUSDT", D("50000"))
    kernel.on_price("ETHUSDT", D("3000"))
    kernel.handle(SetLeverage("BTCUSDT", 10))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.2"), stop_loss=D("47000"), take_profit=D("56000")))
    kernel.on_price("BTCUSDT", D("50500"))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    kernel.submit(SubmitOrder("BTCUSDT", SELL, quantity=D("0.05"), reduce_only=True))
    kernel.submit(SubmitOrder("ETHUSDT", SELL, quantity=D("2.5")))
    kernel.submit(SubmitOrder("ETHUSDT", BUY, OrderType.LIMIT, D("1"), price=D("2900")))
    kernel.submit(SubmitOrder("ETHUSDT", BUY, OrderType.STOP_MARKET, D("0.5"), stop_price=D("3100")))
    # a sell stop-limit that triggers at 2985 but cannot sell at its 2990 limit there: it rests triggered
    kernel.submit(SubmitOrder("ETHUSDT", SELL, OrderType.STOP_LIMIT, D("0.3"), price=D("2990"),
                              stop_price=D("2995")))
    kernel.on_price("ETHUSDT", D("2985"))
    kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, equity_fraction=D("0.1"), price=D("48000")))


def continue_trading(kernel):
    """The same steps after restore: prices that hit every kind of working order, then new commands."""
    yield kernel.on_price("ETHUSDT", D("2995"))   # the triggered stop-limit fills
    yield kernel.on_price("ETHUSDT", D("2899"))   # the ETH limit fills
    yield kernel.on_price("ETHUSDT", D("3150"))   # the ETH buy stop fills
    yield kernel.on_price("BTCUSDT", D("47900"))  # the sized-later limit fills (margin-sized now)
    yield kernel.on_price("BTCUSDT", D("46900"))  # the stop loss closes BTC
    yield kernel.submit(SubmitOrder("BTCUSDT", SELL, quantity=D("0.01"), take_profit=D("40000")))
    yield kernel.handle(ClosePosition("ETHUSDT"))
    yield kernel.on_price("BTCUSDT", D("39000"))


def restored_twin(store, original) -> Kernel:
    """A new kernel restored from ``store``; it becomes the store's writer (``original`` writes to memory)."""
    original.store = MemoryLedgerStore()
    twin = new_kernel(store)
    twin.restore(store.load())
    for symbol in twin.markets:  # the same marks (prices are not part of the ledger)
        twin.on_price(symbol, original.mark(symbol))
    return twin


def test_restore_equals_original_and_both_trade_on_identically(db):
    store = new_account(db)
    kernel = new_kernel(store)
    setup_book(kernel)
    assert any(o.triggered for o in kernel.open_orders())
    twin = restored_twin(store, kernel)
    assert view(twin) == view(kernel)
    ids_before = set(kernel.orders)
    for _ in zip(continue_trading(kernel), continue_trading(twin), strict=True):
        assert view(twin) == view(kernel)
    assert [t for t in twin.ledger.trades if t not in kernel.ledger.trades] == []
    new_ids = [o.id for o in twin.orders.values() if o.id not in ids_before]
    assert new_ids and not set(new_ids) & ids_before  # no id reused after the restart
    # and what the twin wrote is what a restart of the twin reads back
    assert view(restored_twin(store, twin)) == view(twin)


def test_restore_refuses_a_snapshot_with_an_unknown_market(db):
    store = new_account(db)
    kernel = new_kernel(store)
    setup_book(kernel)
    only_btc = Kernel(KernelConfig("USDT", D("100000")), store=MemoryLedgerStore())
    only_btc.add_market(BTC, PaperBroker(lot_size=BTC.lot_size))
    with pytest.raises(ConfigError, match="ETHUSDT"):
        only_btc.restore(store.load())


steps = st.lists(st.one_of(
    st.tuples(st.just("price"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.integers(-300, 300)),
    st.tuples(st.just("market"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.sampled_from([BUY, SELL]),
              st.integers(1, 40)),
    st.tuples(st.just("limit"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.sampled_from([BUY, SELL]),
              st.integers(1, 40), st.integers(1, 200)),
    st.tuples(st.just("stop"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.sampled_from([BUY, SELL]),
              st.integers(1, 40), st.integers(1, 200)),
    st.tuples(st.just("cancel"), st.integers(0, 10)),
    st.tuples(st.just("close"), st.sampled_from(["BTCUSDT", "ETHUSDT"])),
), min_size=1, max_size=25)


def play(kernel, script):
    for step in script:
        kind, *args = step
        try:
            if kind == "price":
                symbol, delta = args
                inst = BTC if symbol == "BTCUSDT" else ETH
                kernel.on_price(symbol, kernel.mark(symbol) + delta * inst.tick_size * 10)
            elif kind == "market":
                symbol, side, lots = args
                kernel.handle(SubmitOrder(symbol, side, quantity=lots * (D("0.01") if symbol == "BTCUSDT" else D("0.1"))))
            elif kind in ("limit", "stop"):
                symbol, side, lots, away = args
                inst = BTC if symbol == "BTCUSDT" else ETH
                offset = away * inst.tick_size * 10
                passive = (-1 if side is BUY else 1) * (1 if kind == "limit" else -1)
                price = kernel.mark(symbol) + passive * offset
                qty = lots * (D("0.01") if symbol == "BTCUSDT" else D("0.1"))
                if kind == "limit":
                    kernel.handle(SubmitOrder(symbol, side, OrderType.LIMIT, qty, price=price))
                else:
                    kernel.handle(SubmitOrder(symbol, side, OrderType.STOP_MARKET, qty, stop_price=price))
            elif kind == "cancel":
                open_orders = [o for o in kernel.open_orders() if o.id.startswith("ord_")]
                if open_orders:
                    kernel.handle(CancelOrder(open_orders[args[0] % len(open_orders)].id))
            elif kind == "close" and kernel.position(args[0]) is not None:
                kernel.handle(ClosePosition(args[0]))
        except QuantdeskError:
            pass  # refused input is part of the game; the ledger must still match


@given(before=steps, after=steps)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_sessions_restore_exactly(db, before, after):
    store = new_account(db, balance="20000")
    kernel = new_kernel(store, balance="20000")
    kernel.on_price("BTCUSDT", D("50000"))
    kernel.on_price("ETHUSDT", D("3000"))
    play(kernel, before)
    twin = restored_twin(store, kernel)
    assert view(twin) == view(kernel)
    play(kernel, after)
    play(twin, after)
    assert view(twin) == view(kernel)
