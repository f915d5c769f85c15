from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.matching import PaperBroker, SimulatedBroker
from quantdesk.engine.ports import ListEventBus, MemoryLedgerStore
from quantdesk.engine.risk import RiskLimits, RiskManager

T0 = datetime(2024, 1, 15, 10, tzinfo=UTC)
BTC = Instrument(InstrumentId(Venue.CRYPTO, "BTC", "USDT"), InstrumentKind.PERPETUAL, "BTCUSDT", "USDT",
                 Decimal("0.1"), Decimal("0.001"), max_leverage=125)


def make_kernel(*, paper: bool = True, balance: str = "10000", leverage: int = 1, fee: str = "0",
                limits: RiskLimits | None = None, mmr: str = "0.005", price: str | None = "50000"):
    store, bus = MemoryLedgerStore(), ListEventBus()
    kernel = Kernel(KernelConfig("USDT", Decimal(balance), FeeSchedule.flat(Decimal(fee)), leverage, Decimal(mmr)),
                    clock=SimulatedClock(T0), store=store, bus=bus, risk=RiskManager(limits))
    broker = PaperBroker(lot_size=BTC.lot_size) if paper else SimulatedBroker(lot_size=BTC.lot_size)
    kernel.add_market(BTC, broker, leverage)
    if price is not None:
        kernel.on_price("BTCUSDT", Decimal(price))
    return kernel, store, bus


