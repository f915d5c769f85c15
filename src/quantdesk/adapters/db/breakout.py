"""SqlBreakoutStore: the Breakout engine's EngineStateStore and PresetStore on SQLAlchemy Core.

A save replaces the user's ``breakout_engines`` row in one transaction; ``daily_r`` goes
through the exact Money column type. Preset changes are JSON documents (numbers, text, lists).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from quantdesk.adapters.db.breakout_tables import breakout_engines, breakout_presets
from quantdesk.services.breakout_ports import EngineSnapshot
from quantdesk.services.breakout_states import EngineState


class SqlBreakoutStore:
    """Each user's engine snapshot and preset changes."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._engine = engine
        self._now = now

    # -- EngineStateStore ---------------------------------------------------------------------

    def load(self, user_id: int) -> EngineSnapshot | None:
        t = breakout_engines
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.user_id == user_id)).first()
        if row is None:
            return None
        return EngineSnapshot(
            state=EngineState(row.state), preset=row.preset, mode=row.mode, started_at=row.started_at,
            config=dict(row.config), symbols=tuple(row.symbols), daily_r=Decimal(row.daily_r),
            daily_r_day=row.daily_r_day, consecutive_losses=row.consecutive_losses, losses_since=row.losses_since,
            kill_switch=row.kill_switch, cycle_count=row.cycle_count, total_signals=row.total_signals,
            reason=row.reason)

    def save(self, user_id: int, snapshot: EngineSnapshot) -> None:
        t = breakout_engines
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(t.c.user_id == user_id))
            conn.execute(insert(t).values(
                user_id=user_id, state=snapshot.state.value, preset=snapshot.preset, mode=snapshot.mode,
                started_at=snapshot.started_at, config=snapshot.config, symbols=list(snapshot.symbols),
                daily_r=snapshot.daily_r, daily_r_day=snapshot.daily_r_day,
                consecutive_losses=snapshot.consecutive_losses, losses_since=snapshot.losses_since,
                kill_switch=snapshot.kill_switch, cycle_count=snapshot.cycle_count,
                total_signals=snapshot.total_signals, reason=snapshot.reason, updated_at=self._now()))

    def active_user_ids(self) -> list[int]:
        t = breakout_engines
        with self._engine.connect() as conn:
            return list(conn.execute(select(t.c.user_id).where(t.c.state != EngineState.IDLE.value)
                                     .order_by(t.c.user_id)).scalars())

    # -- PresetStore --------------------------------------------------------------------------

    def presets(self) -> SqlPresetStore:
        return SqlPresetStore(self._engine, now=self._now)


class SqlPresetStore:
    """Each user's preset changes, one row per (user, preset)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._engine = engine
        self._now = now

    def load(self, user_id: int) -> dict[str, dict[str, Any]]:
        t = breakout_presets
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.user_id == user_id).order_by(t.c.name)).all()
        return {r.name: dict(r.changes) for r in rows}

    def save(self, user_id: int, name: str, changes: dict[str, Any]) -> None:
        t = breakout_presets
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(t.c.user_id == user_id, t.c.name == name))
            conn.execute(insert(t).values(user_id=user_id, name=name, changes=changes, updated_at=self._now()))
