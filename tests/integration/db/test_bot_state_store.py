"""SqlBotStateStore keeps a user's bot and strategy settings exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kit.db import add_user as _user
from quantdesk.adapters.db.bot_state import SqlBotStateStore
from quantdesk.adapters.db.tables import users
from quantdesk.services.trading_state import ActiveStrategy, BotSnapshot, StrategySetting
from quantdesk.services.trading_strategies import restore_parameters

IST = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def engine(migrated_engine: sa.Engine) -> sa.Engine:
    return migrated_engine


def _snapshot(started_at: datetime | None = None) -> BotSnapshot:
    sma = {"fast": 3, "slow": 8, "allow_short": True, "size_fraction": Decimal("0.123456789012345678901234567")}
    return BotSnapshot(
        running=True, paper=True, started_at=started_at or datetime(2024, 1, 15, 15, 30, 0, 123456, tzinfo=IST),
        active=(ActiveStrategy("sma_cross", sma), ActiveStrategy("momentum", {"rsi_period": 21, "overbought": 75.5})),
        signals_total={"sma_cross": 12, "momentum": 3}, signals_today={"sma_cross": 2}, signals_day=date(2024, 1, 15),
        strategies=(StrategySetting("momentum", False, {"rsi_period": 21, "overbought": 75.5},
                                    datetime(2024, 1, 15, 10, tzinfo=UTC)),
                    StrategySetting("sma_cross", True, sma, datetime(2024, 1, 15, 9, 59, 59, 999999, tzinfo=UTC))),
    )


def test_bot_snapshot_round_trips_and_parameters_come_back_exact(engine):
    store = SqlBotStateStore(engine)
    uid = _user(engine, "bot")
    assert store.load(uid) is None
    saved = _snapshot()
    store.save(uid, saved)
    back = store.load(uid)
    assert back is not None
    assert (back.running, back.paper, back.signals_day) == (True, True, date(2024, 1, 15))
    assert back.started_at == saved.started_at and back.started_at.utcoffset() == timedelta(0)
    assert back.signals_total == {"sma_cross": 12, "momentum": 3} and back.signals_today == {"sma_cross": 2}
    assert [a.name for a in back.active] == ["sma_cross", "momentum"]  # start order kept
    assert [(s.name, s.enabled, s.updated_at) for s in back.strategies] == [
        (s.name, s.enabled, s.updated_at) for s in saved.strategies]
    # the schema types the stored values again: the Decimal is exact, never through float
    for stored, original in ((back.active[0].parameters, saved.active[0].parameters),
                             (back.strategies[1].parameters, saved.strategies[1].parameters)):
        assert restore_parameters("sma_cross", stored) == original
    assert restore_parameters("momentum", back.strategies[0].parameters) == {
        "rsi_period": 21, "overbought": 75.5, "oversold": 30.0, "allow_short": False, "size_fraction": Decimal(1)}


def test_save_replaces_the_whole_snapshot_and_lists_running_bots(engine):
    store = SqlBotStateStore(engine)
    running, stopped, other = _user(engine, "a"), _user(engine, "b"), _user(engine, "c")
    store.save(running, _snapshot())
    store.save(stopped, _snapshot())
    store.save(stopped, BotSnapshot(running=False, paper=True, signals_total={"sma_cross": 12},
                                    strategies=(StrategySetting("sma_cross", False, {"fast": 2},
                                                                datetime(2024, 2, 1, tzinfo=UTC)),)))
    back = store.load(stopped)
    assert back is not None and not back.running and back.started_at is None and back.active == ()
    assert [(s.name, s.enabled, dict(s.parameters)) for s in back.strategies] == [("sma_cross", False, {"fast": 2})]
    assert back.signals_today == {} and back.signals_day is None
    ids = store.running_user_ids()
    assert running in ids and stopped not in ids and other not in ids


def test_deleting_a_user_deletes_their_bot(engine):
    store = SqlBotStateStore(engine)
    uid = _user(engine, "gone")
    store.save(uid, _snapshot())
    with engine.begin() as c:
        c.execute(users.delete().where(users.c.id == uid))
    assert store.load(uid) is None and uid not in store.running_user_ids()
