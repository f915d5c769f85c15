"""Hosted Python strategies (see adapters/db/pystrategies.py); the scripts themselves live on disk."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Table

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

# One row per uploaded strategy. ``env_secure`` holds name -> SecretBox token, never plaintext.
py_strategies = Table(
    "py_strategies",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid4 text
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("file_name", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # stopped | running | error
    Column("pid", Integer, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("stopped_at", UtcDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("exit_reason", String(200), nullable=True),
    Column("is_scheduled", Boolean, nullable=False),
    Column("schedule_start", String(5), nullable=True),  # HH:MM IST
    Column("schedule_stop", String(5), nullable=True),
    Column("schedule_days", JSON, nullable=False),  # ["mon", ...]
    Column("env_regular", JSON, nullable=False),
    Column("env_secure", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("modified_at", UtcDateTime, nullable=False),
    Index("ix_py_strategies_user_id", "user_id"),
)
