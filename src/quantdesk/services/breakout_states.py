"""The Breakout engine's state machine: states, triggers and the one transition table.

Read it as a table (row = state, column = trigger). A pair that is not in the table is a
refusal: :func:`next_state` raises ConflictError naming the state and the trigger, so no
sequence of commands or events can reach an undefined transition. Notes on the unusual rows:

- ``PANIC_EXIT`` and ``KILL_SWITCH`` are accepted in every state. They flatten the account
  (done by the service before the transition is saved); a stopped engine stays ``IDLE``.
- ``SIGNAL`` is accepted while ``MANAGING`` too: a free slot may take a second market.
- ``TIME_STOP`` closes the engine's positions and keeps it running (``PAUSED`` stays paused).
- ``RETRY`` leaves ``ERROR`` and ``EMERGENCY`` by scanning again; the service refuses it while
  the kill switch is engaged (only ``STOP`` clears that).
"""

from __future__ import annotations

from enum import StrEnum

from quantdesk.core.errors import ConflictError


class EngineState(StrEnum):
    """Where the engine is; spelled upper case on the Breakout surface (``IDLE``, ``PAUSED``)."""

    IDLE = "idle"
    SCANNING = "scanning"
    LEVEL_BUILDING = "level_building"
    SIGNAL_WAIT = "signal_wait"
    SIZING = "sizing"
    EXECUTION = "execution"
    MANAGING = "managing"
    PAUSED = "paused"
    ERROR = "error"
    EMERGENCY = "emergency"


class Trigger(StrEnum):
    """Commands (start, stop and the /api/engine/command ones) and events the engine reacts to."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    TIME_STOP = "time_stop"
    PANIC_EXIT = "panic_exit"
    KILL_SWITCH = "kill_switch"
    RETRY = "retry"
    SCANNED = "scanned"
    LEVELS_READY = "levels_ready"
    SIGNAL = "signal"
    SIZED = "sized"
    FILLED = "filled"
    REJECTED = "rejected"
    POSITION_OPENED = "position_opened"
    ALL_FLAT = "all_flat"
    RISK_HALT = "risk_halt"
    FAIL = "fail"


S, T = EngineState, Trigger

# the states in which strategies are hosted and see bars
ACTIVE = frozenset({S.SCANNING, S.LEVEL_BUILDING, S.SIGNAL_WAIT, S.SIZING, S.EXECUTION, S.MANAGING})
RUNNING = ACTIVE | {S.PAUSED}
# the commands a client may send to POST /api/engine/command
COMMANDS = (T.PAUSE, T.RESUME, T.TIME_STOP, T.PANIC_EXIT, T.KILL_SWITCH, T.RETRY)


def _row(**pairs: EngineState) -> dict[Trigger, EngineState]:
    return {Trigger(k.lower()): v for k, v in pairs.items()}


_EMERGENCY = dict(PANIC_EXIT=S.EMERGENCY, KILL_SWITCH=S.EMERGENCY, STOP=S.IDLE)
_ACTIVE = dict(PAUSE=S.PAUSED, RISK_HALT=S.PAUSED, FAIL=S.ERROR, **_EMERGENCY)

TRANSITIONS: dict[EngineState, dict[Trigger, EngineState]] = {
    S.IDLE: _row(START=S.SCANNING, PANIC_EXIT=S.IDLE, KILL_SWITCH=S.IDLE),
    S.SCANNING: _row(SCANNED=S.LEVEL_BUILDING, **_ACTIVE),
    S.LEVEL_BUILDING: _row(LEVELS_READY=S.SIGNAL_WAIT, POSITION_OPENED=S.MANAGING, TIME_STOP=S.LEVEL_BUILDING,
                           **_ACTIVE),
    S.SIGNAL_WAIT: _row(SIGNAL=S.SIZING, POSITION_OPENED=S.MANAGING, TIME_STOP=S.SIGNAL_WAIT,
                        LEVELS_READY=S.SIGNAL_WAIT, **_ACTIVE),
    S.SIZING: _row(SIZED=S.EXECUTION, REJECTED=S.SIGNAL_WAIT, POSITION_OPENED=S.MANAGING, TIME_STOP=S.SIGNAL_WAIT,
                   **_ACTIVE),
    S.EXECUTION: _row(FILLED=S.MANAGING, REJECTED=S.SIGNAL_WAIT, POSITION_OPENED=S.MANAGING,
                      TIME_STOP=S.SIGNAL_WAIT, **_ACTIVE),
    S.MANAGING: _row(SIGNAL=S.SIZING, POSITION_OPENED=S.MANAGING, ALL_FLAT=S.SIGNAL_WAIT, TIME_STOP=S.SIGNAL_WAIT,
                     **_ACTIVE),
    S.PAUSED: _row(RESUME=S.LEVEL_BUILDING, TIME_STOP=S.PAUSED, RISK_HALT=S.PAUSED, FAIL=S.ERROR, **_EMERGENCY),
    S.ERROR: _row(RETRY=S.SCANNING, **_EMERGENCY),
    S.EMERGENCY: _row(RETRY=S.SCANNING, **_EMERGENCY),
}


def allowed(state: EngineState) -> list[Trigger]:
    """The triggers ``state`` accepts, in declaration order."""
    return [t for t in Trigger if t in TRANSITIONS[state]]


def next_state(state: EngineState, trigger: Trigger) -> EngineState:
    """The state after ``trigger``; ConflictError (code ENGINE_STATE) when ``state`` refuses it."""
    target = TRANSITIONS[state].get(trigger)
    if target is None:
        accepted = ", ".join(t.value for t in allowed(state) if t in COMMANDS or t in (T.START, T.STOP))
        raise ConflictError(
            f"the engine is {state.name}: {trigger.value!r} is not possible now"
            + (f" (possible: {accepted})" if accepted else ""),
            code="ENGINE_STATE", details={"state": state.name, "command": trigger.value})
    return target


__all__ = ["ACTIVE", "COMMANDS", "RUNNING", "TRANSITIONS", "EngineState", "Trigger", "allowed", "next_state"]
