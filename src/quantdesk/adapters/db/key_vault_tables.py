"""The ML backend's exchange-key vault and each user's configured strategies (see adapters/db/key_vault.py
and adapters/db/ml_strategies.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

# One row per stored credential; the key and secret only as Fernet tokens (SecretBox), never plaintext.
# A delete is soft: active goes false and deleted_at is set; the row stays.
exchange_api_keys = Table(
    "exchange_api_keys",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid4 text
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("provider_id", String(32), nullable=False),
    Column("environment", String(16), nullable=False),
    Column("label", String(100), nullable=True),
    Column("api_key_encrypted", Text, nullable=False),
    Column("api_secret_encrypted", Text, nullable=False),
    Column("api_key_hint", String(16), nullable=False),  # first 4 + "..." + last 4
    Column("api_secret_hint", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
    Index("ix_exchange_api_keys_user_id_active", "user_id", "active"),
)

# A user's configured strategy instances (ML backend /api/strategies/); deleted rows are removed.
ml_strategies = Table(
    "ml_strategies",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid4 text
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("type", String(64), nullable=False),
    Column("params", JSON, nullable=False),  # symbols, timeframe and the type's parameters; Decimals as text
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_ml_strategies_user_id", "user_id"),
)
