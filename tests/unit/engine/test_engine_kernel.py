from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from engine_kit import T0, make_kernel

from quantdesk.core.commands import CancelOrder, ClosePosition, PanicExit, SetLeverage, SubmitOrder
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.events import OrderDenied, OrderRejected, PositionLiquidated
from quantdesk.core.market import Bar
from quantdesk.core.orders import IllegalTransitionError, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import ExitReason
from quantdesk.engine.risk import RiskLimits

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def bar(k, o, h, low, c):
    return Bar(T0 + timedelta(minutes=k), D(o), D(h), D(low), D(c), D(100))


def test_paper_market_order_fills_at_once_against_the_current_price():
    kernel, store, _ = make_kernel(fee="0.0004")
    order = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == D("50000")
    assert [s for s, _ in order.history] == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    position = kernel.position("BTCUSDT")
    assert position.quantity == D("0.1") and position.entry_price == D("50000")
    assert position.margin == D("5000")
    assert kernel.ledger.account.wallet == D("10000") - D("2.0")  # 0.04% of 5,000 notional
    # one command, one batch holding the order, the fill, the position and the balances
    assert len(store.batches) == 1 and store.batches[-1].fills[0].order_id == order.id


def test_reduce_only_without_position_is_rejected_with_order_rejected():
    kernel, _, bus = make_kernel()
    order = kernel.submit(SubmitOrder("BTCUSDT", SELL, quantity=D("0.1"), reduce_only=True))
    assert order.status is OrderStatus.REJECTED and order.reason_code == "ORDER_REJECTED"
    assert any(isinstance(e, OrderRejected) and e.code == "ORDER_REJECTED" for e in bus.events)
    assert kernel.position("BTCUSDT") is None


def test_order_beyond_margin_is_rejected_with_insufficient_balance():
    kernel, _, _ = make_kernel(leverage=10)
    ok = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("1.9")))  # margin 9,500 at 10x
    assert ok.status is OrderStatus.FILLED
    refused = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.2")))
    assert refused.status is OrderStatus.REJECTED and refused.reason_code == "INSUFFICIENT_BALANCE"
    assert kernel.position("BTCUSDT").quantity == D("1.9")


def test_isolated_margin_and_liquidation_price_at_leverage():
    kernel, _, _ = make_kernel(leverage=10)
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    position = kernel.position("BTCUSDT")
    assert position.margin == D("500")  # notional / leverage
    liq = position.liquidation_price(D("0.005"))
    assert D("45226") < liq < D("45227")  # 50000 * 0.9 / 0.995


def test_price_through_liquidation_closes_the_position():
    kernel, _, bus = make_kernel(leverage=10)
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    kernel.on_bar("BTCUSDT", bar(1, "50000", "50100", "45000", "45500"))
    assert kernel.position("BTCUSDT") is None
    trade = kernel.ledger.trades[-1]
    assert trade.exit_reason is ExitReason.LIQUIDATION and trade.exit_price == D("45226.2")
    assert any(isinstance(e, PositionLiquidated) for e in bus.events)


def test_stop_that_gaps_fills_at_the_bar_open_not_the_stop():
    kernel, _, _ = make_kernel(paper=False)
    kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.STOP_MARKET, D("0.1"), stop_price=D("51000")))
    kernel.on_bar("BTCUSDT", bar(1, "52000", "52500", "51800", "52200"))
    fill = kernel.ledger.fills[-1]
    assert fill.price == D("52000")


def test_stop_inside_the_bar_fills_at_the_stop():
    kernel, _, _ = make_kernel(paper=False)
    kernel.submit(SubmitOrder("BTCUSDT", SELL, OrderType.STOP_MARKET, D("0.1"), stop_price=D("49000")))
    kernel.on_bar("BTCUSDT", bar(1, "49500", "49600", "48000", "48500"))
    assert kernel.ledger.fills[-1].price == D("49000")


def test_limit_order_rests_then_fills_at_its_price_as_maker():
    kernel, _, _ = make_kernel(fee="0.001")
    order = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.1"), price=D("49000")))
    assert order.status is OrderStatus.ACCEPTED
    kernel.on_bar("BTCUSDT", bar(1, "49800", "49900", "48500", "49100"))
    assert order.status is OrderStatus.FILLED and kernel.ledger.fills[-1].price == D("49000")
    assert kernel.ledger.fills[-1].liquidity.value == "maker"


def test_ioc_that_cannot_fill_expires_and_fok_too():
    kernel, _, _ = make_kernel()
    ioc = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.1"), price=D("40000"),
                                    time_in_force=TimeInForce.IOC))
    fok = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.1"), price=D("40000"),
                                    time_in_force=TimeInForce.FOK))
    assert ioc.status is OrderStatus.EXPIRED and fok.status is OrderStatus.EXPIRED


def test_volume_limit_partially_fills_gtc_and_kills_fok():
    from quantdesk.engine.matching import SimulatedBroker, SimulatedBrokerConfig

    kernel, _, _ = make_kernel(paper=False)
    kernel.markets["BTCUSDT"].broker = SimulatedBroker(SimulatedBrokerConfig(volume_limit=D("0.001")),
                                                       lot_size=D("0.001"))
    gtc = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.15")))
    fok = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.15"), price=D("60000"),
                                    time_in_force=TimeInForce.FOK))
    kernel.on_bar("BTCUSDT", bar(1, "50000", "50100", "49900", "50000"))  # volume 100 → 0.1 per bar
    assert gtc.status is OrderStatus.PARTIALLY_FILLED and gtc.filled_quantity == D("0.1")
    assert fok.status is OrderStatus.EXPIRED
    kernel.on_bar("BTCUSDT", bar(2, "50000", "50100", "49900", "50000"))
    assert gtc.status is OrderStatus.FILLED and kernel.position("BTCUSDT").quantity == D("0.15")


def test_attached_stop_loss_and_take_profit_are_one_cancels_other():
    kernel, _, _ = make_kernel(paper=False)
    entry = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1"), stop_loss=D("49000"),
                                      take_profit=D("52000")))
    kernel.on_bar("BTCUSDT", bar(1, "50000", "50500", "49800", "50200"))
    assert entry.status is OrderStatus.FILLED
    position = kernel.position("BTCUSDT")
    assert position.stop_loss == D("49000") and position.take_profit == D("52000")
    kernel.on_bar("BTCUSDT", bar(2, "50200", "52500", "50100", "52300"))
    assert kernel.position("BTCUSDT") is None
    trade = kernel.ledger.trades[-1]
    assert trade.exit_reason is ExitReason.TAKE_PROFIT and trade.exit_price == D("52000")
    assert not kernel.open_orders("BTCUSDT")  # the stop loss was cancelled with the position
    assert trade.r_multiple == D(2)  # risked 1,000 per unit, made 2,000


def test_stop_loss_is_hit_in_the_same_bar_as_the_entry():
    kernel, _, _ = make_kernel(paper=False)
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1"), stop_loss=D("49000")))
    kernel.on_bar("BTCUSDT", bar(1, "50000", "50100", "48000", "48500"))
    assert kernel.position("BTCUSDT") is None
    assert kernel.ledger.trades[-1].exit_reason is ExitReason.STOP_LOSS


def test_partial_close_makes_a_round_trip_and_keeps_the_rest():
    kernel, _, _ = make_kernel(fee="0.001", balance="20000")
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.2")))
    kernel.on_price("BTCUSDT", D("51000"))
    result = kernel.handle(ClosePosition("BTCUSDT", D("0.05")))
    assert result.order.status is OrderStatus.FILLED
    trade = kernel.ledger.trades[-1]
    assert trade.quantity == D("0.05") and trade.gross_pnl == D("50")
    assert trade.commission == D("0.05") * D("50000") * D("0.001") + D("0.05") * D("51000") * D("0.001")
    assert kernel.position("BTCUSDT").quantity == D("0.15")


def test_close_position_without_position_is_not_found():
    kernel, _, _ = make_kernel()
    with pytest.raises(NotFoundError) as err:
        kernel.handle(ClosePosition("BTCUSDT"))
    assert err.value.code == "POSITION_NOT_FOUND"


def test_cancel_filled_order_is_an_illegal_transition():
    kernel, _, _ = make_kernel()
    order = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    with pytest.raises(IllegalTransitionError):
        kernel.handle(CancelOrder(order.id))


def test_leverage_above_the_instrument_maximum_names_the_limit():
    kernel, _, _ = make_kernel()
    with pytest.raises(InvalidInputError) as err:
        kernel.handle(SetLeverage("BTCUSDT", 150))
    assert "150 exceeds the BTCUSDT maximum of 125" in err.value.message


def test_panic_exit_leaves_no_position_and_blocks_new_entries():
    kernel, _, bus = make_kernel()
    kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    resting = kernel.submit(SubmitOrder("BTCUSDT", BUY, OrderType.LIMIT, D("0.1"), price=D("40000")))
    kernel.handle(PanicExit())
    assert kernel.position("BTCUSDT") is None and resting.status is OrderStatus.CANCELLED
    denied = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.1")))
    assert denied.status is OrderStatus.REJECTED and denied.reason_code == "KILL_SWITCH"
    assert any(isinstance(e, OrderDenied) for e in bus.events)


def test_max_concurrent_positions_and_consecutive_losses_deny_entries():
    kernel, _, _ = make_kernel(limits=RiskLimits(max_consecutive_losses=2))
    for _ in range(2):
        kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.01")))
        kernel.on_price("BTCUSDT", D("49000"))
        kernel.handle(ClosePosition("BTCUSDT"))
        kernel.on_price("BTCUSDT", D("50000"))
    denied = kernel.submit(SubmitOrder("BTCUSDT", BUY, quantity=D("0.01")))
    assert denied.reason_code == "RISK_CONSECUTIVE_LOSSES"


def test_flip_with_equity_fraction_closes_then_sizes_the_new_side():
    kernel, _, _ = make_kernel(paper=False, price="100")
    kernel.submit(SubmitOrder("BTCUSDT", BUY, equity_fraction=D("0.5")))
    kernel.on_bar("BTCUSDT", bar(1, "100", "101", "99", "100"))
    assert kernel.position("BTCUSDT").quantity == D("50")
    kernel.submit(SubmitOrder("BTCUSDT", SELL, equity_fraction=D("0.5")))
    kernel.on_bar("BTCUSDT", bar(2, "110", "111", "109", "110"))
    position = kernel.position("BTCUSDT")
    assert position.side.value == "short" and position.quantity == D("47.727")  # 10,500 * 0.5 / 110
    assert kernel.ledger.trades[-1].gross_pnl == D("500")
