"""TradingService and its BotStateStore: every change saved before it returns, a failed save leaves no trace,
and a restore takes back what still fits the strategy registry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from kit.app import make_settings
from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.app import build_market
from quantdesk.services.trading import TradingService
from quantdesk.services.trading_state import ActiveStrategy, BotSnapshot, MemoryBotStateStore, StrategySetting


class FailingStore(MemoryBotStateStore):
    """Keeps snapshots until told to refuse (as a database that went away would)."""

    refuse = False

    def save(self, user_id: int, snapshot: BotSnapshot) -> None:
        if self.refuse:
            raise OSError("database unavailable")
        super().save(user_id, snapshot)


@pytest.fixture
def market(tmp_path):
    return build_market(make_settings(tmp_path, live_feed_speed=0))


def _service(market, store) -> TradingService:
    return TradingService(market, InMemoryEventBus(), bot_states=store)


async def test_every_change_is_saved_before_it_returns(market):
    store = MemoryBotStateStore()
    trading = _service(market, store)
    await trading.update_strategy(7, "sma_cross", parameters={"fast": 2, "slow": 5})
    saved = store.load(7)
    assert saved is not None and not saved.running
    assert [(s.name, dict(s.parameters)["fast"]) for s in saved.strategies] == [("sma_cross", 2)]
    state = await trading.start_bot(7, strategies=["sma_cross"])
    saved = store.load(7)
    assert saved.running and saved.started_at == state.started_at
    assert saved.active == (ActiveStrategy("sma_cross", {"fast": 2, "slow": 5, "allow_short": False,
                                                         "size_fraction": Decimal(1)}),)
    assert store.running_user_ids() == [7]
    await trading.stop_bot(7)
    assert not store.load(7).running and store.running_user_ids() == []


async def test_a_failed_save_leaves_the_bot_and_settings_as_they_were(market):
    store = FailingStore()
    trading = _service(market, store)
    await trading.update_strategy(7, "momentum", enabled=False)
    before = await trading.strategies(7)
    store.refuse = True
    with pytest.raises(OSError):
        await trading.update_strategy(7, "momentum", enabled=True, parameters={"rsi_period": 30})
    with pytest.raises(OSError):
        await trading.start_bot(7, strategies=["momentum"])
    assert await trading.strategies(7) == before
    assert not (await trading.bot_status(7)).running
    store.refuse = False
    await trading.start_bot(7, strategies=["momentum"])
    store.refuse = True
    with pytest.raises(OSError):
        await trading.stop_bot(7)
    assert (await trading.bot_status(7)).running


async def test_restore_keeps_what_still_fits_the_registry(market):
    store = MemoryBotStateStore()
    started_at = datetime(2024, 1, 15, 10, tzinfo=UTC)
    changed_at = datetime(2024, 1, 15, 9, tzinfo=UTC)
    store.save(7, BotSnapshot(
        running=True, paper=True, started_at=started_at,
        active=(ActiveStrategy("retired", {}), ActiveStrategy("momentum", {"rsi_period": "21", "gone": 1}),
                ActiveStrategy("sma_cross", {"fast": 9, "slow": 3})),
        signals_total={"momentum": 4}, signals_today={"momentum": 1}, signals_day=date(2024, 1, 15),
        strategies=(StrategySetting("retired", True, {}, changed_at),
                    StrategySetting("momentum", False, {"rsi_period": "21", "size_fraction": "0.5"}, changed_at),
                    StrategySetting("breakout", True, {"entry_period": 1}, changed_at)),
    ))
    trading = _service(market, store)
    assert await trading.resume_bots() == 1
    status = await trading.bot_status(7)
    assert status.running and status.started_at == started_at
    by_name = {s.name: s for s in await trading.strategies(7)}
    assert "retired" not in by_name
    assert not by_name["momentum"].enabled and by_name["momentum"].total_signals == 4
    assert by_name["momentum"].parameters["rsi_period"] == 21
    assert by_name["momentum"].parameters["size_fraction"] == Decimal("0.5")
    # entry_period 1 is below the schema's minimum now: the strategy keeps its defaults, enabled as saved
    assert by_name["breakout"].enabled and by_name["breakout"].parameters["entry_period"] == 20
    # the resumed bot as it runs: the retired strategy dropped, sma_cross's saved parameters no longer
    # validate (fast >= slow) so it runs on its current settings, the defaults
    await trading.update_strategy(7, "breakout", enabled=False)
    saved = store.load(7)
    assert saved.running and saved.started_at == started_at
    assert [(a.name, dict(a.parameters)) for a in saved.active] == [
        ("momentum", {"rsi_period": 21, "overbought": 70.0, "oversold": 30.0, "allow_short": False,
                      "size_fraction": Decimal(1)}),
        ("sma_cross", {"fast": 10, "slow": 20, "allow_short": False, "size_fraction": Decimal(1)})]
    assert saved.signals_total == {"momentum": 4} and saved.signals_day == date(2024, 1, 15)


async def test_a_live_bot_comes_back_stopped_when_live_trading_is_not_allowed(market):
    store = MemoryBotStateStore()
    store.save(7, BotSnapshot(running=True, paper=False, started_at=datetime(2024, 1, 15, tzinfo=UTC),
                              active=(ActiveStrategy("momentum", {}),)))
    trading = _service(market, store)
    assert await trading.resume_bots() == 0
    status = await trading.bot_status(7)
    assert not status.running and not status.paper
