"""CcxtBroker against a fake Binance USD-M futures venue that checks every request's HMAC signature."""

from decimal import Decimal

import pytest
from broker_constants import API_KEY, NOW, SECRET, make_broker

from quantdesk.core.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    NotFoundError,
    UpstreamUnavailableError,
)
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType
from quantdesk.core.portfolio import Balance
from quantdesk.engine.ports import LiveBroker, VenuePosition

ORDER = "/fapi/v1/order"


def market(order_id: str, side: OrderSide, quantity: str) -> Order:
    return Order(order_id, "BTCUSDT", side, OrderType.MARKET, Decimal(quantity), NOW)


def limit(order_id: str, side: OrderSide, quantity: str, price: str) -> Order:
    return Order(order_id, "BTCUSDT", side, OrderType.LIMIT, Decimal(quantity), NOW, price=Decimal(price))


def test_ccxt_broker_satisfies_the_live_broker_port(broker):
    assert isinstance(broker, LiveBroker)
    assert API_KEY not in repr(broker) and SECRET not in repr(broker)


def test_ccxt_market_order_fills_at_the_venue_price_with_a_signed_request(broker, fake_binance, venue):
    placed = broker.submit_order(market("ord_1", OrderSide.BUY, "0.1"))

    assert placed.status is OrderStatus.FILLED and placed.client_order_id == "ord_1"
    assert placed.filled_quantity == Decimal("0.1") and placed.average_price == Decimal("50000")
    [request] = [r for r in fake_binance.requests if r.path == ORDER]
    assert request.method == "POST" and request.headers["x-mbx-apikey"] == API_KEY
    assert b"signature=" in request.body and b"newClientOrderId=ord_1" in request.body
    assert venue.position("BTCUSDT").quantity == Decimal("0.1")
    assert venue.wallet == Decimal(10_000) - Decimal("2")  # 0.1 × 50000 × 0.04% taker fee


def test_ccxt_limit_order_rests_until_the_price_crosses_then_fills_at_its_limit(broker, venue):
    placed = broker.submit_order(limit("ord_2", OrderSide.BUY, "0.01", "49000"))
    assert placed.status is OrderStatus.ACCEPTED and placed.filled_quantity == 0

    venue.set_price("BTCUSDT", Decimal("49500"))
    assert broker.fetch_order("BTCUSDT", placed.venue_order_id).status is OrderStatus.ACCEPTED
    venue.set_price("BTCUSDT", Decimal("48900"))
    filled = broker.fetch_order("BTCUSDT", placed.venue_order_id)

    assert filled.status is OrderStatus.FILLED
    assert filled.filled_quantity == Decimal("0.01") and filled.average_price == Decimal("49000")


def test_ccxt_cancel_removes_a_resting_order_and_a_second_cancel_is_not_found(broker, venue):
    placed = broker.submit_order(limit("ord_3", OrderSide.SELL, "0.01", "52000"))

    cancelled = broker.cancel_order("BTCUSDT", placed.venue_order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(NotFoundError) as err:
        broker.cancel_order("BTCUSDT", placed.venue_order_id)
    assert err.value.code == "ORDER_NOT_FOUND"
    with pytest.raises(NotFoundError):
        broker.fetch_order("BTCUSDT", "999999")


def test_ccxt_balances_and_positions_follow_trades_and_leverage(broker, venue):
    assert broker.fetch_balances() == [Balance("USDT", Decimal(10_000), Decimal(0))]
    assert broker.fetch_positions() == []

    broker.set_leverage("BTCUSDT", 5)
    broker.submit_order(market("ord_4", OrderSide.SELL, "0.2"))
    venue.set_price("BTCUSDT", Decimal("49000"))

    assert venue.leverage["BTCUSDT"] == 5
    assert broker.fetch_positions(["BTCUSDT"]) == [
        VenuePosition("BTCUSDT", Decimal("-0.2"), Decimal("50000"), 5, Decimal("200"))]
    # wallet 10000 − 4 fee; margin 0.2 × 50000 / 5 = 2000 in use
    assert broker.fetch_balances() == [Balance("USDT", Decimal("7996"), Decimal("2000"))]


def test_ccxt_order_beyond_the_margin_is_insufficient_balance(broker, venue):
    with pytest.raises(InsufficientBalanceError) as err:
        broker.submit_order(market("ord_5", OrderSide.BUY, "5"))  # 250k notional at 20x needs 12.5k

    assert err.value.code == "INSUFFICIENT_BALANCE"
    assert venue.orders == {} and venue.wallet == Decimal(10_000)


def test_ccxt_wrong_secret_is_a_clear_authentication_error(fake_binance, venue, sleeps):
    broker = make_broker(fake_binance, sleeps, secret="not-the-secret")

    with pytest.raises(AuthenticationError) as err:
        broker.fetch_balances()

    assert err.value.code == "EXCHANGE_AUTH_FAILED"
    assert "Signature for this request is not valid" in err.value.message
    assert "not-the-secret" not in err.value.message and SECRET not in err.value.message
    assert sleeps == []  # not retried


def test_ccxt_rate_limited_once_is_retried_and_places_the_order_once(broker, fake_binance, venue, sleeps):
    fake_binance.rate_limited(ORDER, times=1, retry_after_s=2)

    placed = broker.submit_order(market("ord_6", OrderSide.BUY, "0.1"))

    assert placed.status is OrderStatus.FILLED
    assert len(venue.orders) == 1
    assert sleeps == [2.0]  # Retry-After beats the 0.25 s backoff
    posts = [r for r in fake_binance.requests if r.path == ORDER and r.method == "POST"]
    assert len(posts) == 2  # the 429, then the order; the look-up in between found nothing


def test_ccxt_lost_reply_is_looked_up_by_client_order_id_not_placed_twice(broker, fake_binance, venue, sleeps):
    venue.lost_replies = 1  # the venue takes the order but the reply is a 502

    placed = broker.submit_order(market("ord_7", OrderSide.BUY, "0.1"))

    assert placed.status is OrderStatus.FILLED and placed.client_order_id == "ord_7"
    assert len(venue.orders) == 1 and venue.position("BTCUSDT").quantity == Decimal("0.1")
    lookup = [r for r in fake_binance.requests if r.path == ORDER and r.method == "GET"]
    assert lookup and lookup[0].query["origClientOrderId"] == "ord_7"


def test_ccxt_persistent_5xx_becomes_exchange_error_after_the_retries(broker, fake_binance, venue, sleeps):
    fake_binance.fail(ORDER, 503, "Service Unavailable", times=None)

    with pytest.raises(UpstreamUnavailableError) as err:
        broker.submit_order(market("ord_9", OrderSide.BUY, "0.1"))

    assert err.value.code == "EXCHANGE_ERROR"
    assert err.value.details["attempts"] == 3
    assert sleeps == [0.25, 0.5]
    assert venue.orders == {}
