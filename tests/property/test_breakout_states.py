"""The Breakout engine's state machine: no sequence reaches an undefined transition; EMERGENCY always flattens."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.app import make_settings
from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.app import build_market
from quantdesk.core.errors import ConflictError, InvalidInputError
from quantdesk.core.orders import OrderSide, OrderType
from quantdesk.services.breakout import BreakoutService
from quantdesk.services.breakout_states import (
    COMMANDS,
    RUNNING,
    TRANSITIONS,
    EngineState,
    Trigger,
    next_state,
)
from quantdesk.services.trading import TradingService

triggers = st.sampled_from(list(Trigger))


def test_transition_table_covers_every_state_and_names_only_states():
    assert set(TRANSITIONS) == set(EngineState)
    for row in TRANSITIONS.values():
        assert set(row) <= set(Trigger) and set(row.values()) <= set(EngineState)


@given(st.sampled_from(list(EngineState)), st.lists(triggers, max_size=40))
def test_no_trigger_sequence_reaches_an_undefined_transition(start, sequence):
    state = start
    for trigger in sequence:
        try:
            after = next_state(state, trigger)
        except ConflictError as err:  # a defined refusal naming the state and the trigger
            assert err.status == 409 and err.details == {"state": state.name, "command": trigger.value}
            continue
        assert isinstance(after, EngineState)
        state = after
    # from anywhere, the emergency commands are accepted and stop always reaches IDLE
    assert next_state(state, Trigger.PANIC_EXIT) in (EngineState.EMERGENCY, EngineState.IDLE)
    assert next_state(state, Trigger.KILL_SWITCH) in (EngineState.EMERGENCY, EngineState.IDLE)
    if state is not EngineState.IDLE:
        assert next_state(state, Trigger.STOP) is EngineState.IDLE


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return build_market(make_settings(tmp_path_factory.mktemp("breakout_states"), live_feed_speed=0))


ACTIONS = st.lists(st.sampled_from(["start", "stop", "open", *[c.value for c in COMMANDS]]), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_commands_follow_the_table_and_emergency_always_flattens(market, actions):
    asyncio.run(_run(market, actions))


async def _run(market, actions: list[str]) -> None:
    trading = TradingService(market, InMemoryEventBus())
    breakout = BreakoutService(trading, InMemoryEventBus())
    user = 1
    await breakout.update_preset(user, "breakout_v1", {"scanner_config": {"symbols": ["BTCUSDT", "ETHUSDT"]}})
    for action in actions:
        before = (await breakout.status(user)).state
        if action == "open":  # a manual position in the same account
            await trading.place_order(user, symbol="ETHUSDT", side=OrderSide.BUY, type=OrderType.MARKET,
                                      quantity=Decimal("0.1"))
            continue
        trigger = Trigger(action)
        try:
            expected = next_state(before, trigger)
        except ConflictError:
            expected = None
        try:
            if action == "start":
                view = await breakout.start(user)
            elif action == "stop":
                view = await breakout.stop(user)
            else:
                view = await breakout.command(user, action)
        except ConflictError:
            # refused by the table, or retry under the kill switch, or resume past the daily limit
            assert expected is None or trigger in (Trigger.RETRY, Trigger.RESUME)
            assert (await breakout.status(user)).state is before
            continue
        except InvalidInputError:
            raise
        assert expected is not None, (before, action)
        if trigger in (Trigger.START, Trigger.RETRY):  # the scan follows at once
            assert view.state in (EngineState.LEVEL_BUILDING, EngineState.ERROR)
        elif trigger is Trigger.RESUME:
            assert view.state in RUNNING
        else:
            assert view.state is expected
        if trigger in (Trigger.PANIC_EXIT, Trigger.KILL_SWITCH):
            assert (await trading.positions(user)).positions == []
            assert not [o for o in await trading.orders(user) if o.status.is_open]
        if view.state is EngineState.EMERGENCY:
            assert (await trading.positions(user)).positions == []
