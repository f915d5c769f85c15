"""Request bodies and reply shapes of the Python Strategies surface (3-python-strategies-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from quantdesk.services.pystrategies import StrategyView
from quantdesk.services.pystrategies_ports import IST, LogFile


class ScheduleIn(BaseModel):
    """``{"start_time": "09:15", "stop_time": "15:30", "days": ["mon", ...]}`` (checked by the service)."""

    model_config = ConfigDict(extra="ignore")
    start_time: Any = None
    stop_time: Any = None
    days: Any = None


class SaveIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: Any = None


class EnvIn(BaseModel):
    """Regular variables (replace the set) and secure ones (null keeps a stored secret)."""

    model_config = ConfigDict(extra="ignore")
    regular_vars: Any = None
    secure_vars: Any = None


def iso_ist(at: datetime | None) -> str | None:
    """``2024-01-01T09:15:00+05:30`` as in the reference's data model."""
    return at.astimezone(IST).isoformat(timespec="seconds") if at else None


def strategy_out(view: StrategyView) -> dict[str, Any]:
    """The reference's Strategy Configuration plus the process state quantdesk knows."""
    s = view.strategy
    return {
        "id": s.id,
        "name": s.name,
        "file_path": f"strategies/{s.owner_id}/{s.id}.py",
        "file_name": s.file_name,
        "status": s.status.value,
        "is_running": s.is_running,
        "is_scheduled": s.is_scheduled,
        "schedule_start": s.schedule_start,
        "schedule_stop": s.schedule_stop,
        "schedule_days": list(s.schedule_days),
        "next_start": iso_ist(view.next_start_at),
        "next_stop": iso_ist(view.next_stop_at),
        "last_started": iso_ist(s.started_at),
        "last_stopped": iso_ist(s.stopped_at),
        "last_modified": iso_ist(s.modified_at),
        "created_at": iso_ist(s.created_at),
        "pid": s.pid if s.is_running else None,
        "exit_code": s.exit_code,
        "exit_reason": s.exit_reason,
        "memory_mb": view.stats.get("memory_mb") if view.stats else None,
        "cpu_percent": view.stats.get("cpu_percent") if view.stats else None,
        "isolation": view.isolation,
    }


def log_file_out(item: LogFile) -> dict[str, Any]:
    return {"name": item.name, "size_bytes": item.size_bytes, "modified": iso_ist(item.modified_at)}
