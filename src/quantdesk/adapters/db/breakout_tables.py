"""The Breakout engine of each user and their preset changes (see adapters/db/breakout.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Integer, String, Table, Text

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import Money, UtcDateTime

# One row per user who ever started the engine; replaced whole on every transition.
breakout_engines = Table(
    "breakout_engines",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("state", String(32), nullable=False, index=True),
    Column("preset", String(64), nullable=True),
    Column("mode", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("config", JSON, nullable=False),  # the preset document the engine runs
    Column("symbols", JSON, nullable=False),  # the markets it trades, e.g. ["BTCUSDT"]
    Column("daily_r", Money, nullable=False),
    Column("daily_r_day", Date, nullable=True),
    Column("consecutive_losses", Integer, nullable=False),
    Column("losses_since", UtcDateTime, nullable=True),
    Column("kill_switch", Boolean, nullable=False),
    Column("cycle_count", Integer, nullable=False),
    Column("total_signals", Integer, nullable=False),
    Column("reason", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Only the sections and keys a user changed, per preset; reads merge them over the built-in preset.
breakout_presets = Table(
    "breakout_presets",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("name", String(64), primary_key=True),
    Column("changes", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
