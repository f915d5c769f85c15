"""FluxScan request bodies and reply shapes (the reference's field names live here)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.services.fluxscan import ScannerDetails
from quantdesk.services.fluxscan_ports import Scan, Scanner, ScanResult, Schedule, Watchlist
from quantdesk.surfaces.shared.responses import iso_utc

Lenient = ConfigDict(extra="ignore")
Strict = ConfigDict(extra="forbid")


class ScannerCreate(BaseModel):
    model_config = Lenient
    name: str = Field(min_length=1, max_length=200)
    code: str = Field(max_length=200_000)
    description: str = Field("", max_length=5000)
    category: str = Field("custom", min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True


class ScannerUpdate(BaseModel):
    model_config = Lenient
    name: str | None = Field(None, min_length=1, max_length=200)
    code: str | None = Field(None, max_length=200_000)
    description: str | None = Field(None, max_length=5000)
    category: str | None = Field(None, min_length=1, max_length=64)
    parameters: dict[str, Any] | None = None
    is_active: bool | None = None


class CodeValidate(BaseModel):
    model_config = Lenient
    code: str = Field(max_length=200_000)


class ScannerTest(BaseModel):
    model_config = Lenient
    symbols: list[str] | None = Field(None, max_length=50)
    parameters: dict[str, Any] | None = None


class WatchlistCreate(BaseModel):
    model_config = Lenient
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    symbols: list[str] = Field(default_factory=list, max_length=5000)
    exchange: str = Field("NSE", min_length=1, max_length=16)


class WatchlistUpdate(BaseModel):
    model_config = Lenient
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    symbols: list[str] | None = Field(None, max_length=5000)
    exchange: str | None = Field(None, min_length=1, max_length=16)


class WatchlistImport(BaseModel):
    model_config = Lenient
    name: str = Field(min_length=1, max_length=200)
    csv_content: str = Field(min_length=1, max_length=500_000)
    exchange: str = Field("NSE", min_length=1, max_length=16)
    description: str = Field("", max_length=5000)


class ScanStart(BaseModel):
    model_config = Lenient
    scanner_id: int = Field(ge=1)
    watchlist_id: int = Field(ge=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class ResultsExport(BaseModel):
    model_config = Lenient
    format: Literal["csv", "json"] = "csv"
    scanner_id: int | None = Field(None, ge=1)
    scan_id: int | None = Field(None, ge=1)
    symbol: str | None = Field(None, max_length=64)
    signal: Literal["BUY", "SELL", "NONE"] | None = None
    start_date: date | None = None
    end_date: date | None = None


class ScheduleCreate(BaseModel):
    model_config = Lenient
    scanner_id: int = Field(ge=1)
    watchlist_id: int = Field(ge=1)
    schedule_type: Literal["interval", "daily"]
    interval_minutes: int | None = Field(None, ge=1, le=10080)
    run_time: str | None = Field(None, max_length=8)
    market_hours_only: bool = False
    is_active: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)


class ScheduleUpdate(BaseModel):
    model_config = Lenient
    scanner_id: int | None = Field(None, ge=1)
    watchlist_id: int | None = Field(None, ge=1)
    schedule_type: Literal["interval", "daily"] | None = None
    interval_minutes: int | None = Field(None, ge=1, le=10080)
    run_time: str | None = Field(None, max_length=8)
    market_hours_only: bool | None = None
    is_active: bool | None = None
    parameters: dict[str, Any] | None = None


class ScheduleToggle(BaseModel):
    model_config = Lenient
    is_active: bool | None = None


class SettingsUpdate(BaseModel):
    model_config = Strict
    market_open_time: str | None = Field(None, max_length=8)
    market_close_time: str | None = Field(None, max_length=8)
    timezone: str | None = Field(None, max_length=64)
    default_exchange: str | None = Field(None, max_length=16)
    enable_notifications: bool | None = None
    default_lookback: int | None = None
    openalgo_url: str | None = Field(None, max_length=500)
    openalgo_api_key: str | None = Field(None, max_length=500)


# ---- replies -------------------------------------------------------------------------

def _ts(value) -> str | None:
    return iso_utc(value) if value is not None else None


def scanner_out(s: Scanner) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "description": s.description, "category": s.category,
            "is_active": s.is_active, "parameters": s.parameters, "created_at": _ts(s.created_at),
            "updated_at": _ts(s.updated_at)}


def scanner_details_out(d: ScannerDetails) -> dict[str, Any]:
    return {**scanner_out(d.scanner), "code": d.scanner.code, "total_scans": d.total_scans,
            "active_schedules": d.active_schedules}


def watchlist_out(w: Watchlist) -> dict[str, Any]:
    return {"id": w.id, "name": w.name, "description": w.description, "exchange": w.exchange,
            "symbols": list(w.symbols), "symbol_count": len(w.symbols), "created_at": _ts(w.created_at),
            "updated_at": _ts(w.updated_at)}


def scan_out(s: Scan) -> dict[str, Any]:
    return {"scan_id": s.id, "id": s.id, "status": s.status.value, "progress": int(s.progress),
            "symbols_scanned": s.symbols_scanned, "signals_found": s.signals_found,
            "total_symbols": s.total_symbols, "scanner_id": s.scanner_id, "scanner_name": s.scanner_name,
            "watchlist_id": s.watchlist_id, "watchlist_name": s.watchlist_name, "parameters": s.parameters,
            "error": s.error, "started_at": _ts(s.started_at), "completed_at": _ts(s.completed_at)}


def result_out(r: ScanResult) -> dict[str, Any]:
    return {"id": r.id, "scan_id": r.scan_id, "symbol": r.symbol, "signal": r.signal,
            "scanner_id": r.scanner_id, "scanner_name": r.scanner_name, "metrics": r.metrics, "price": r.price,
            "error": r.error, "timestamp": _ts(r.created_at)}


def schedule_out(s: Schedule) -> dict[str, Any]:
    return {"id": s.id, "scanner_id": s.scanner_id, "scanner_name": s.scanner_name,
            "watchlist_id": s.watchlist_id, "watchlist_name": s.watchlist_name,
            "schedule_type": s.schedule_type.value, "interval_minutes": s.interval_minutes,
            "run_time": s.run_time, "timezone": "Asia/Kolkata", "market_hours_only": s.market_hours_only,
            "is_active": s.is_active, "parameters": s.parameters, "last_run": _ts(s.last_run_at),
            "next_run": _ts(s.next_run_at), "created_at": _ts(s.created_at)}
