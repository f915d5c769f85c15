"""SqlConfiguredStrategyStore: users' configured strategies (``ml_strategies``) on SQLAlchemy Core.

Parameters are stored as JSON with Decimals as exact text; the service types them by the
strategy's schema again when it reads them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from quantdesk.adapters.db.key_vault_tables import ml_strategies as t
from quantdesk.services.ml_strategies import ConfiguredStrategy


class SqlConfiguredStrategyStore:
    """Each user's configured strategies, one row each."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def add(self, strategy: ConfiguredStrategy) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(t).values(
                id=strategy.id, user_id=strategy.user_id, name=strategy.name, type=strategy.type,
                params=_json(strategy.params), active=strategy.active, created_at=strategy.created_at,
                updated_at=strategy.updated_at,
            ))

    def get(self, user_id: int, strategy_id: str) -> ConfiguredStrategy | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == strategy_id, t.c.user_id == user_id)).first()
        return _strategy(row) if row is not None else None

    def list_all(self, user_id: int) -> list[ConfiguredStrategy]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.user_id == user_id).order_by(t.c.created_at, t.c.id)).all()
        return [_strategy(r) for r in rows]

    def replace(self, strategy: ConfiguredStrategy) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.id == strategy.id, t.c.user_id == strategy.user_id).values(
                name=strategy.name, type=strategy.type, params=_json(strategy.params), active=strategy.active,
                updated_at=strategy.updated_at,
            ))
        return result.rowcount == 1

    def delete(self, user_id: int, strategy_id: str) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(delete(t).where(t.c.id == strategy_id, t.c.user_id == user_id))
        return result.rowcount == 1


def _json(params: Mapping[str, Any]) -> dict[str, Any]:
    # a Decimal goes in as exact text (never through float)
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in params.items()}


def _strategy(row) -> ConfiguredStrategy:
    return ConfiguredStrategy(row.id, row.user_id, row.name, row.type, dict(row.params), row.active,
                              row.created_at, row.updated_at)
