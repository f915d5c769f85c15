from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import pytest

from quantdesk.core.commands import SubmitOrder
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.money import Money, floor_div, quantize, quantize_step, to_decimal
from quantdesk.core.orders import (
    TRANSITIONS,
    IllegalTransitionError,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from quantdesk.core.portfolio import Fill, Position, PositionSide, liquidation_price

T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = Decimal


def test_to_decimal_goes_through_str_for_floats_and_refuses_nan():
    assert to_decimal(0.1) == D("0.1")
    assert to_decimal("1.50") == D("1.50")
    with pytest.raises(InvalidInputError):
        to_decimal(float("nan"), field="price")
    with pytest.raises(InvalidInputError):
        to_decimal(True)


def test_quantize_uses_the_named_rounding_mode():
    assert quantize(D("1.005"), D("0.01"), ROUND_HALF_EVEN) == D("1.00")
    assert quantize(D("1.001"), D("0.01"), ROUND_UP) == D("1.01")
    assert quantize_step(D("10.37"), D("0.25"), ROUND_DOWN) == D("10.25")
    assert floor_div(D("10"), D("3")) == 3 and floor_div(D("-10"), D("3")) == -4


def test_money_of_two_currencies_does_not_add():
    assert Money(D("1.5"), "USD") + Money(D("2"), "USD") == Money(D("3.5"), "USD")
    with pytest.raises(InvalidInputError):
        Money(D(1), "USD") + Money(D(1), "EUR")
    assert Money(D("1.005"), "USD").rounded().amount == D("1.00")


@pytest.mark.parametrize(("kind", "kwargs", "field"), [
    (OrderType.LIMIT, {}, "price"),
    (OrderType.STOP_MARKET, {}, "stop_price"),
    (OrderType.MARKET, {"price": D(1)}, "price"),
    (OrderType.LIMIT, {"price": D(100), "stop_loss": D(101)}, "stop_loss"),
    (OrderType.LIMIT, {"price": D(100), "take_profit": D(99)}, "take_profit"),
])
def test_order_shape_is_validated_naming_the_field(kind, kwargs, field):
    with pytest.raises(InvalidInputError) as err:
        Order("o", "BTCUSDT", OrderSide.BUY, kind, D(1), T0, **kwargs)
    assert err.value.field == field


def test_order_lifecycle_table_rows():
    assert TRANSITIONS[OrderStatus.NEW] == {OrderStatus.ACCEPTED, OrderStatus.REJECTED}
    for terminal in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        assert terminal.is_terminal
    order = Order("o", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, D(2), T0)
    with pytest.raises(IllegalTransitionError) as err:
        order.transition(OrderStatus.FILLED, T0)  # new → filled skips accepted
    assert err.value.code == "ILLEGAL_ORDER_TRANSITION" and order.status is OrderStatus.NEW
    order.transition(OrderStatus.ACCEPTED, T0)
    order.record_fill(D(1), D(100), D("0.1"), T0)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order.record_fill(D(1), D(102), D("0.1"), T0)
    assert order.status is OrderStatus.FILLED and order.avg_fill_price == D(101)
    with pytest.raises(IllegalTransitionError):
        order.transition(OrderStatus.CANCELLED, T0)


def test_enums_parse_any_case_and_name_the_allowed_values():
    assert TimeInForce.parse("GTC", field="time_in_force") is TimeInForce.GTC
    with pytest.raises(InvalidInputError) as err:
        OrderType.parse("iceberg", field="type")
    assert "market, limit, stop_market, stop_limit" in err.value.message


def test_submit_order_needs_exactly_one_size():
    with pytest.raises(InvalidInputError):
        SubmitOrder("BTCUSDT", OrderSide.BUY)
    with pytest.raises(InvalidInputError):
        SubmitOrder("BTCUSDT", OrderSide.BUY, quantity=D(1), equity_fraction=D("0.5"))


def fill(side, qty, price, fee="0", k=0):
    return Fill(f"f{k}", f"o{k}", "BTCUSDT", side, D(qty), D(price), D(fee), "USDT", T0 + timedelta(hours=k))


def test_position_closes_fifo_with_exact_prices_and_pro_rata_fees():
    p = Position("pos_1", "BTCUSDT", PositionSide.LONG, 5, T0)
    p.add(fill(OrderSide.BUY, "1", "100", "0.3"))
    p.add(fill(OrderSide.BUY, "2", "103", "0.6", k=1))
    assert p.entry_price == D(102) and p.margin == D("61.2")
    ids = iter(f"t{n}" for n in range(10))
    trips = p.reduce(fill(OrderSide.SELL, "1.5", "110", "0.9", k=2), D("1.5"), D("0.9"), lambda: next(ids))
    assert [(t.quantity, t.entry_price) for t in trips] == [(D(1), D(100)), (D("0.5"), D(103))]
    assert trips[0].exit_fee + trips[1].exit_fee == D("0.9")
    assert trips[1].entry_fee == D("0.15") and p.lots[0].fee == D("0.45")
    assert p.quantity == D("1.5") and p.realized_pnl == D(10) + D("3.5")
    assert trips[0].duration == timedelta(hours=2)


def test_liquidation_price_isolated_long_and_short():
    assert liquidation_price(PositionSide.LONG, D(50000), 10, D(0)) == D(45000)
    assert liquidation_price(PositionSide.SHORT, D(50000), 10, D(0)) == D(55000)
    assert liquidation_price(PositionSide.LONG, D(50000), 1, D(0)) is None
