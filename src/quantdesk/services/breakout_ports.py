"""What the Breakout engine keeps across restarts: its snapshot per user, each user's preset changes.

The service saves a fresh :class:`EngineSnapshot` after every transition, before it is
acknowledged, and loads every non-idle one when it starts. Preset changes are kept per user
and preset as the partial documents the user sent (merged over the built-in on read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from quantdesk.services.breakout_states import EngineState


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """One user's engine: state, preset (and the document it runs), mode, markets, counters.

    ``started_at`` is UTC; ``daily_r`` is the R of the engine's trades closed on ``daily_r_day``
    (UTC); ``losses_since`` is when the consecutive-loss count last restarted (start, resume).
    """

    state: EngineState = EngineState.IDLE
    preset: str | None = None
    mode: str = "paper"
    started_at: datetime | None = None
    config: dict[str, Any] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    daily_r: Decimal = Decimal(0)
    daily_r_day: date | None = None
    consecutive_losses: int = 0
    losses_since: datetime | None = None
    kill_switch: bool = False
    cycle_count: int = 0
    total_signals: int = 0
    reason: str | None = None  # why the engine is PAUSED, in ERROR or in EMERGENCY


class EngineStateStore(Protocol):
    """Keeps each user's :class:`EngineSnapshot` (one per user, replaced whole on every save)."""

    def load(self, user_id: int) -> EngineSnapshot | None: ...

    def save(self, user_id: int, snapshot: EngineSnapshot) -> None: ...

    def active_user_ids(self) -> list[int]:
        """Users whose saved engine is not IDLE (brought back when the server starts)."""
        ...


class PresetStore(Protocol):
    """Keeps each user's changes to presets: preset name → the sections they sent (merged)."""

    def load(self, user_id: int) -> dict[str, dict[str, Any]]: ...

    def save(self, user_id: int, name: str, changes: dict[str, Any]) -> None: ...


class MemoryEngineStateStore:
    def __init__(self) -> None:
        self._rows: dict[int, EngineSnapshot] = {}

    def load(self, user_id: int) -> EngineSnapshot | None:
        return self._rows.get(user_id)

    def save(self, user_id: int, snapshot: EngineSnapshot) -> None:
        self._rows[user_id] = snapshot

    def active_user_ids(self) -> list[int]:
        return sorted(uid for uid, s in self._rows.items() if s.state is not EngineState.IDLE)


class MemoryPresetStore:
    def __init__(self) -> None:
        self._rows: dict[int, dict[str, dict[str, Any]]] = {}

    def load(self, user_id: int) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._rows.get(user_id, {}).items()}

    def save(self, user_id: int, name: str, changes: dict[str, Any]) -> None:
        self._rows.setdefault(user_id, {})[name] = dict(changes)


__all__ = ["EngineSnapshot", "EngineStateStore", "MemoryEngineStateStore", "MemoryPresetStore", "PresetStore"]
