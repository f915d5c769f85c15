"""SqlStrategyStore: the StrategyStore port of hosted Python strategies on SQLAlchemy Core."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from quantdesk.adapters.db.pystrategies_tables import py_strategies
from quantdesk.core.errors import NotFoundError
from quantdesk.services.pystrategies_ports import HostedStrategy, StrategyStatus

_COLUMNS = ("name", "file_name", "status", "pid", "started_at", "stopped_at", "exit_code", "exit_reason",
            "is_scheduled", "schedule_start", "schedule_stop", "schedule_days", "env_regular", "env_secure",
            "created_at", "modified_at")


def _row(strategy: HostedStrategy) -> dict[str, Any]:
    return {
        "id": strategy.id, "user_id": strategy.owner_id, "name": strategy.name, "file_name": strategy.file_name,
        "status": strategy.status.value, "pid": strategy.pid, "started_at": strategy.started_at,
        "stopped_at": strategy.stopped_at, "exit_code": strategy.exit_code, "exit_reason": strategy.exit_reason,
        "is_scheduled": strategy.is_scheduled, "schedule_start": strategy.schedule_start,
        "schedule_stop": strategy.schedule_stop, "schedule_days": list(strategy.schedule_days),
        "env_regular": dict(strategy.env_regular), "env_secure": dict(strategy.env_secure),
        "created_at": strategy.created_at, "modified_at": strategy.modified_at,
    }


def _strategy(row: Any) -> HostedStrategy:
    return HostedStrategy(
        id=row.id, owner_id=row.user_id, name=row.name, file_name=row.file_name, status=StrategyStatus(row.status),
        created_at=row.created_at, modified_at=row.modified_at, pid=row.pid, started_at=row.started_at,
        stopped_at=row.stopped_at, exit_code=row.exit_code, exit_reason=row.exit_reason,
        is_scheduled=row.is_scheduled, schedule_start=row.schedule_start, schedule_stop=row.schedule_stop,
        schedule_days=tuple(row.schedule_days or ()), env_regular=dict(row.env_regular or {}),
        env_secure=dict(row.env_secure or {}),
    )


class SqlStrategyStore:
    """Hosted strategies in ``py_strategies``."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def add(self, strategy: HostedStrategy) -> HostedStrategy:
        with self._engine.begin() as conn:
            conn.execute(insert(py_strategies).values(**_row(strategy)))
        return strategy

    def get(self, strategy_id: str) -> HostedStrategy | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(py_strategies).where(py_strategies.c.id == strategy_id)).first()
        return _strategy(row) if row else None

    def list(self, owner_id: int | None = None) -> list[HostedStrategy]:
        query = select(py_strategies).order_by(py_strategies.c.created_at.desc(), py_strategies.c.id)
        if owner_id is not None:
            query = query.where(py_strategies.c.user_id == owner_id)
        with self._engine.connect() as conn:
            return [_strategy(r) for r in conn.execute(query)]

    def update(self, strategy_id: str, values: dict[str, Any]) -> HostedStrategy:
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown py_strategies columns {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, StrategyStatus) else v) for k, v in values.items()}
        for key in ("schedule_days",):
            if key in values:
                values[key] = list(values[key])
        with self._engine.begin() as conn:
            if values:
                conn.execute(update(py_strategies).where(py_strategies.c.id == strategy_id).values(**values))
            row = conn.execute(select(py_strategies).where(py_strategies.c.id == strategy_id)).first()
        if row is None:
            raise NotFoundError("strategy", strategy_id, code="STRATEGY_NOT_FOUND")
        return _strategy(row)

    def delete(self, strategy_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(py_strategies).where(py_strategies.c.id == strategy_id))
