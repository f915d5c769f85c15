"""Each user's trading bot and the strategy settings they changed (see adapters/db/bot_state.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Integer, String, Table

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

# One row per user who ever started, stopped or configured the bot; replaced whole on every save.
bot_states = Table(
    "bot_states",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("running", Boolean, nullable=False),
    Column("paper", Boolean, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("active", JSON, nullable=False),  # [{"name", "parameters"}] in start order; Decimals as text
    Column("signals_total", JSON, nullable=False),  # strategy name → count
    Column("signals_today", JSON, nullable=False),  # strategy name → count on signals_day
    Column("signals_day", Date, nullable=True),  # the UTC day signals_today counts
    Column("updated_at", UtcDateTime, nullable=False),
)

# Only the strategies a user changed; the others keep the registry's defaults.
bot_strategy_settings = Table(
    "bot_strategy_settings",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("strategy", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("parameters", JSON, nullable=False),  # name → value; Decimals as text
    Column("updated_at", UtcDateTime, nullable=False),
)
