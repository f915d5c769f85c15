"""breakout_levels: a volume-confirmed close through the range enters with an ATR stop and an R target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.core.market import Bar
from quantdesk.core.portfolio import PositionSide
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import Kernel, KernelConfig
from quantdesk.engine.matching import PaperBroker
from quantdesk.engine.strategy import create_strategy
from quantdesk.strategies.breakout_levels import SlotBook

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BTC = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "BTCUSDT", "USDT",
                 Decimal("0.1"), Decimal("0.001"), max_leverage=125)


def _run(last_close: int, last_volume: int, *, slots: SlotBook | None = None) -> Kernel:
    kernel = Kernel(KernelConfig("USDT", Decimal(10_000), default_leverage=10), clock=SimulatedClock(T0))
    kernel.add_market(BTC, PaperBroker(lot_size=BTC.lot_size))
    strategy = create_strategy("breakout_levels", {"lookback": 10, "volume_period": 10, "atr_period": 5,
                                                   "atr_stop": 1.0, "take_profit_r": 2.0, "risk_per_trade": "0.01"})
    strategy.slots = slots
    kernel.add_strategy("BTCUSDT", strategy)
    for i in range(12):
        close = 100 + (i % 2)
        kernel.on_bar("BTCUSDT", Bar(T0 + timedelta(minutes=i), Decimal(close), Decimal(close + 1),
                                     Decimal(close - 1), Decimal(close), Decimal(10)))
    at = T0 + timedelta(minutes=12)
    kernel.on_bar("BTCUSDT", Bar(at, Decimal(101), Decimal(last_close), Decimal(100), Decimal(last_close),
                                 Decimal(last_volume)))
    return kernel


def test_breakout_with_volume_buys_with_atr_stop_and_two_r_target():
    kernel = _run(105, 50)
    position = kernel.position("BTCUSDT")
    assert position is not None and position.side is PositionSide.LONG and position.entry_price == 105
    risk = position.entry_price - position.stop_loss
    assert risk > 0 and position.take_profit == position.entry_price + 2 * risk
    # sized so the stop loses 1% of equity (rounded down to the lot)
    assert position.quantity * risk <= Decimal(100) < (position.quantity + BTC.lot_size) * risk
    assert position.lots[0].initial_risk_per_unit == risk


@pytest.mark.parametrize("close, volume, slots", [(105, 10, None), (101, 50, None),
                                                  (105, 50, SlotBook(1, open=False))])
def test_no_entry_without_volume_without_a_break_or_without_a_free_slot(close, volume, slots):
    assert _run(close, volume, slots=slots).position("BTCUSDT") is None


def test_slot_book_caps_markets_held_at_once():
    slots = SlotBook(1)
    assert _run(105, 50, slots=slots).position("BTCUSDT") is not None
    assert slots.held == {"BTCUSDT"} and not slots.may_enter("ETHUSDT")
