"""SqlBotStateStore: the trading service's BotStateStore on SQLAlchemy Core, SQLite or PostgreSQL.

A save replaces the user's ``bot_states`` row and ``bot_strategy_settings`` rows in ONE
transaction. Parameter values are stored as JSON with Decimals as exact text; the service
validates what :meth:`SqlBotStateStore.load` gives back against each strategy's schema again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from quantdesk.adapters.db.bot_state_tables import bot_states, bot_strategy_settings
from quantdesk.services.trading_state import ActiveStrategy, BotSnapshot, StrategySetting


class SqlBotStateStore:
    """Each user's bot snapshot in ``bot_states`` plus ``bot_strategy_settings``."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._engine = engine
        self._now = now

    def load(self, user_id: int) -> BotSnapshot | None:
        """The user's snapshot, or None if neither the bot nor a strategy setting was ever saved."""
        with self._engine.connect() as conn:
            bot = conn.execute(select(bot_states).where(bot_states.c.user_id == user_id)).first()
            rows = conn.execute(select(bot_strategy_settings)
                                .where(bot_strategy_settings.c.user_id == user_id)
                                .order_by(bot_strategy_settings.c.strategy)).all()
        if bot is None and not rows:
            return None
        strategies = tuple(StrategySetting(r.strategy, r.enabled, dict(r.parameters), r.updated_at) for r in rows)
        if bot is None:
            return BotSnapshot(strategies=strategies)
        return BotSnapshot(
            running=bot.running, paper=bot.paper, started_at=bot.started_at,
            active=tuple(ActiveStrategy(a["name"], dict(a["parameters"])) for a in bot.active),
            signals_total={k: int(v) for k, v in bot.signals_total.items()},
            signals_today={k: int(v) for k, v in bot.signals_today.items()},
            signals_day=bot.signals_day, strategies=strategies,
        )

    def save(self, user_id: int, snapshot: BotSnapshot) -> None:
        """Replace the user's bot row and strategy settings (one transaction)."""
        now = self._now()
        with self._engine.begin() as conn:
            conn.execute(delete(bot_states).where(bot_states.c.user_id == user_id))
            conn.execute(insert(bot_states).values(
                user_id=user_id, running=snapshot.running, paper=snapshot.paper, started_at=snapshot.started_at,
                active=[{"name": a.name, "parameters": _json_parameters(a.parameters)} for a in snapshot.active],
                signals_total=dict(snapshot.signals_total), signals_today=dict(snapshot.signals_today),
                signals_day=snapshot.signals_day, updated_at=now,
            ))
            conn.execute(delete(bot_strategy_settings).where(bot_strategy_settings.c.user_id == user_id))
            if snapshot.strategies:
                conn.execute(insert(bot_strategy_settings), [
                    {"user_id": user_id, "strategy": s.name, "enabled": s.enabled,
                     "parameters": _json_parameters(s.parameters), "updated_at": s.updated_at}
                    for s in snapshot.strategies
                ])

    def running_user_ids(self) -> list[int]:
        """Users whose saved bot is running, by id."""
        with self._engine.connect() as conn:
            return list(conn.execute(select(bot_states.c.user_id).where(bot_states.c.running.is_(True))
                                     .order_by(bot_states.c.user_id)).scalars())


def _json_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    # a Decimal goes in as exact text (never through float); the strategy's schema types it again on load
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in parameters.items()}
