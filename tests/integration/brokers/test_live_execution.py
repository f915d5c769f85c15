"""A Kernel trading through LiveExecution + CcxtBroker on the fake venue books what the paper broker books."""

from decimal import Decimal

import pytest
from broker_constants import BTC_PRICE, NOW

from quantdesk.core.commands import CancelOrder, SetLeverage, SubmitOrder
from quantdesk.core.events import OrderFilled, OrderRejected
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.core.orders import OrderSide, OrderStatus, OrderType
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.live import LiveExecution
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.ports import ListEventBus

BTC_PERP = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "Bitcoin perpetual",
                      "USDT", Decimal("0.1"), Decimal("0.001"), max_leverage=125)
# the fake venue's fees; liquidation is the venue's business on a live account
CONFIG = KernelConfig(currency="USDT", initial_balance=Decimal(10_000),
                      fees=FeeSchedule(maker=Decimal("0.0002"), taker=Decimal("0.0004")), default_leverage=5,
                      liquidation=False)


def kernel_with(broker, config: KernelConfig = CONFIG) -> tuple[Kernel, ListEventBus]:
    bus = ListEventBus()
    kernel = Kernel(config, clock=SimulatedClock(NOW), bus=bus)
    kernel.add_market(BTC_PERP, broker, 5)
    kernel.on_price("BTCUSDT", BTC_PRICE)
    return kernel, bus


@pytest.fixture
def live(broker, venue) -> tuple[Kernel, ListEventBus]:
    broker.set_leverage("BTCUSDT", 5)
    return kernel_with(LiveExecution(broker, BTC_PERP))


@pytest.fixture
def paper() -> tuple[Kernel, ListEventBus]:
    return kernel_with(PaperBroker(lot_size=BTC_PERP.lot_size))


def fills(bus: ListEventBus) -> list:
    return [e.fill for e in bus.events if isinstance(e, OrderFilled)]


def test_live_market_order_books_the_same_fill_position_and_balance_as_paper(live, paper, venue):
    (lk, lbus), (pk, pbus) = live, paper
    command = SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.MARKET, quantity=Decimal("0.1"))

    live_order, paper_order = lk.submit(command), pk.submit(command)

    assert live_order.status is paper_order.status is OrderStatus.FILLED
    assert fills(lbus) == fills(pbus) and len(fills(lbus)) == 1
    fill = fills(lbus)[0]
    assert fill.price == BTC_PRICE and fill.fee == Decimal("2") and fill.quantity == Decimal("0.1")
    assert lk.position("BTCUSDT") == pk.position("BTCUSDT")
    assert lk.ledger.account.balances() == pk.ledger.account.balances()
    # and the venue agrees: same position, wallet down by the same fee
    assert venue.position("BTCUSDT").quantity == lk.position("BTCUSDT").quantity
    assert venue.wallet == lk.ledger.account.wallets["USDT"] == Decimal("9998")


def test_live_limit_order_fills_when_the_venue_crosses_as_paper_does(live, paper, venue):
    (lk, lbus), (pk, pbus) = live, paper
    command = SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, quantity=Decimal("0.05"),
                          price=Decimal("49000"))
    live_order, paper_order = lk.submit(command), pk.submit(command)
    assert live_order.status is paper_order.status is OrderStatus.ACCEPTED

    venue.set_price("BTCUSDT", Decimal("48950"))
    lk.on_price("BTCUSDT", Decimal("48950"))
    pk.on_price("BTCUSDT", Decimal("48950"))

    assert live_order.status is paper_order.status is OrderStatus.FILLED
    assert fills(lbus) == fills(pbus)
    assert fills(lbus)[0].price == Decimal("49000") and fills(lbus)[0].liquidity.value == "maker"
    assert lk.ledger.account.balances() == pk.ledger.account.balances()
    assert venue.wallet == lk.ledger.account.wallets["USDT"]


def test_live_cancel_reaches_the_venue(live, venue):
    kernel, _ = live
    order = kernel.submit(SubmitOrder("BTCUSDT", OrderSide.SELL, OrderType.LIMIT, quantity=Decimal("0.01"),
                                      price=Decimal("55000")))

    kernel.handle(CancelOrder(order.id))

    assert order.status is OrderStatus.CANCELLED
    assert [o.status for o in venue.orders.values()] == ["CANCELED"]


def test_live_venue_refusal_becomes_a_rejected_order_event(broker, venue):
    # the kernel believes in more money than the venue holds, so only the venue refuses
    kernel, bus = kernel_with(LiveExecution(broker, BTC_PERP),
                              KernelConfig(currency="USDT", initial_balance=Decimal(1_000_000),
                                           fees=CONFIG.fees, liquidation=False))

    order = kernel.submit(SubmitOrder("BTCUSDT", OrderSide.BUY, quantity=Decimal("5")))  # 12.5k margin at 20x

    assert order.status is OrderStatus.REJECTED and order.reason_code == "INSUFFICIENT_BALANCE"
    [event] = [e for e in bus.events if isinstance(e, OrderRejected)]
    assert event.order_id == order.id
    assert kernel.position("BTCUSDT") is None and venue.orders == {}


def test_live_set_leverage_reaches_the_venue(live, venue):
    kernel, _ = live

    kernel.handle(SetLeverage("BTCUSDT", 10))

    assert venue.leverage["BTCUSDT"] == 10
