"""SqlMlStore: each user's trained models, predictions and backtests on SQLAlchemy Core."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from quantdesk.adapters.db.ml_model_tables import ml_backtests, ml_models, ml_predictions
from quantdesk.services.ml_models import BacktestRecord, ModelRecord, PredictionRecord


class SqlMlStore:
    """Models (one row per user and name), predictions and backtests; every read is by owner."""

    def __init__(self, engine: Engine):
        self._engine = engine

    # -- models
    def save_model(self, model: ModelRecord) -> None:
        values = {k: getattr(model, k) for k in ("id", "user_id", "name", "type", "symbol", "timeframe",
                                                  "n_steps_ahead", "path", "size_bytes", "trained_at", "task_id",
                                                  "performance", "details")}
        with self._engine.begin() as conn:
            conn.execute(delete(ml_models).where(ml_models.c.user_id == model.user_id, ml_models.c.name == model.name))
            conn.execute(insert(ml_models).values(**values))

    def get_model(self, user_id: int, name: str) -> ModelRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(ml_models).where(ml_models.c.user_id == user_id,
                                                       ml_models.c.name == name)).first()
        return _model(row) if row is not None else None

    def list_models(self, user_id: int) -> list[ModelRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(ml_models).where(ml_models.c.user_id == user_id)
                                .order_by(ml_models.c.trained_at.desc(), ml_models.c.name)).all()
        return [_model(r) for r in rows]

    # -- predictions
    def add_prediction(self, prediction: PredictionRecord) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(ml_predictions).values(**_fields(prediction)))

    def update_prediction(self, prediction_id: str, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool:
        return self._update(ml_predictions, prediction_id, only_if, values)

    def get_prediction(self, user_id: int, prediction_id: str) -> PredictionRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(ml_predictions).where(ml_predictions.c.user_id == user_id,
                                                            ml_predictions.c.id == prediction_id)).first()
        return PredictionRecord(**row._mapping) if row is not None else None

    def list_predictions(self, user_id: int, *, symbol: str | None = None, timeframe: str | None = None,
                         limit: int = 100) -> list[PredictionRecord]:
        q = select(ml_predictions).where(ml_predictions.c.user_id == user_id)
        if symbol:
            q = q.where(ml_predictions.c.symbol == symbol)
        if timeframe:
            q = q.where(ml_predictions.c.timeframe == timeframe)
        q = q.order_by(ml_predictions.c.created_at.desc(), ml_predictions.c.id).limit(limit)
        with self._engine.connect() as conn:
            return [PredictionRecord(**r._mapping) for r in conn.execute(q).all()]

    # -- backtests
    def add_backtest(self, backtest: BacktestRecord) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(ml_backtests).values(**_fields(backtest)))

    def update_backtest(self, backtest_id: str, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool:
        return self._update(ml_backtests, backtest_id, only_if, values)

    def get_backtest(self, user_id: int, backtest_id: str) -> BacktestRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(ml_backtests).where(ml_backtests.c.user_id == user_id,
                                                          ml_backtests.c.id == backtest_id)).first()
        return BacktestRecord(**row._mapping) if row is not None else None

    def list_backtests(self, user_id: int, *, limit: int = 100) -> list[BacktestRecord]:
        q = (select(ml_backtests).where(ml_backtests.c.user_id == user_id)
             .order_by(ml_backtests.c.created_at.desc(), ml_backtests.c.id).limit(limit))
        with self._engine.connect() as conn:
            return [BacktestRecord(**r._mapping) for r in conn.execute(q).all()]

    def fail_unfinished(self, error: str, now: datetime) -> int:
        count = 0
        with self._engine.begin() as conn:
            for table in (ml_predictions, ml_backtests):
                count += conn.execute(update(table).where(table.c.status.in_(("queued", "running")))
                                      .values(status="failed", error=error, completed_at=now)).rowcount
        return count

    def _update(self, table, row_id: str, only_if: tuple[str, ...] | None, values: dict[str, Any]) -> bool:
        q = update(table).where(table.c.id == row_id)
        if only_if:
            q = q.where(table.c.status.in_(only_if))
        with self._engine.begin() as conn:
            return conn.execute(q.values(**values)).rowcount == 1


def _fields(record: Any) -> dict[str, Any]:
    return {k: getattr(record, k) for k in record.__slots__}


def _model(row) -> ModelRecord:
    return ModelRecord(**row._mapping)
