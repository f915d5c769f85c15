"""The ML backend's trained models, stored predictions and backtests (see adapters/db/ml_models.py)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

# One row per trained model of a user; the booster itself is a LightGBM text file under
# data_dir/models/<user_id>/<name>.txt (``path`` relative to data_dir). Retraining replaces the row.
ml_models = Table(
    "ml_models",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid4 text
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(120), nullable=False),
    Column("type", String(32), nullable=False),
    Column("symbol", String(40), nullable=False),  # ML spelling: ETH_USDT, RELIANCE
    Column("timeframe", String(8), nullable=False),
    Column("n_steps_ahead", Integer, nullable=False),
    Column("path", String(300), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("trained_at", UtcDateTime, nullable=False),
    Column("task_id", String(36), nullable=True),
    Column("performance", JSON, nullable=False),
    Column("details", JSON, nullable=False),  # feature importance, anchors, calibration, training config
    UniqueConstraint("user_id", "name", name="uq_ml_models_user_id_name"),
    Index("ix_ml_models_user_id_symbol_timeframe", "user_id", "symbol", "timeframe"),
)

# A user's predictions: generated in the background (status queued/running/completed/failed) or at once.
ml_predictions = Table(
    "ml_predictions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("model_name", String(120), nullable=True),
    Column("status", String(16), nullable=False),
    Column("task_id", String(36), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    Index("ix_ml_predictions_user_id_created_at", "user_id", "created_at"),
)

# A user's backtests (status queued/running/success/failed); ``result`` holds the engine's figures.
ml_backtests = Table(
    "ml_backtests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("start_date", UtcDateTime, nullable=False),
    Column("end_date", UtcDateTime, nullable=False),
    Column("config", JSON, nullable=False),  # initial capital, commission, params: what reruns it exactly
    Column("status", String(16), nullable=False),
    Column("task_id", String(36), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    Index("ix_ml_backtests_user_id_created_at", "user_id", "created_at"),
)
