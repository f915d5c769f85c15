"""Breakout request bodies and reply shapes (4-breakout-bot-api.md), field for field.

Symbols are spelled ``BTC/USDT``, states upper case (``IDLE``), sides lower case, amounts
JSON numbers (quantized to 1e-10), times ISO 8601 UTC with ``Z`` except where the reference
shows epochs (``/api/metrics/performance`` seconds, ``/api/metrics/health`` milliseconds).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.core.instruments import parse_symbol
from quantdesk.core.orders import Order, OrderStatus
from quantdesk.services.breakout import BreakoutPosition, EngineStatusView, ScannerStatus, ScanResult
from quantdesk.services.breakout_analytics import EquityPoint
from quantdesk.services.push import number
from quantdesk.surfaces.shared.responses import iso_utc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EngineStart(Strict):
    preset: str = Field("breakout_v1", min_length=1, max_length=64)
    mode: str = Field("paper", min_length=1, max_length=16)


class EngineCommand(Strict):
    command: str = Field(min_length=1, max_length=64)


class ScanRequest(Strict):
    preset: str = Field("breakout_v1", min_length=1, max_length=64)
    limit: int = 10
    symbols: list[str] | None = Field(None, max_length=100)


def _time(at: datetime | None) -> str | None:
    return iso_utc(at) if at is not None else None


def _float(value: Decimal | None) -> int | float | None:
    return number(value)


def slash(symbol: str) -> str:
    """``BTCUSDT`` as the reference spells it (``BTC/USDT``)."""
    return parse_symbol(symbol).spell("slash")


def ack(message: str, now: datetime, **extra: Any) -> dict[str, Any]:
    return {"success": True, "message": message, **extra, "timestamp": iso_utc(now)}


def status_out(view: EngineStatusView) -> dict[str, Any]:
    return {
        "state": view.state.name,
        "preset": view.preset,
        "mode": view.mode,
        "startedAt": _time(view.started_at),
        "slots": view.slots,
        "openPositions": view.open_positions,
        "latencyMs": view.latency_ms,
        "dailyR": round(float(view.daily_r), 6),
        "consecutiveLosses": view.consecutive_losses,
        "symbols": [slash(s) for s in view.symbols],
        "reason": view.reason,
        "killSwitch": view.kill_switch,
    }


def position_out(p: BreakoutPosition) -> dict[str, Any]:
    v = p.view
    pos = v.position
    pnl_r = p.pnl_r
    r = None if pnl_r is None else round(float(pnl_r), 6)
    return {
        "id": pos.id,
        "symbol": slash(pos.symbol),
        "side": pos.side.value,
        "entry": _float(pos.entry_price),
        "sl": _float(pos.stop_loss),
        "tp": _float(pos.take_profit),
        "size": _float(pos.quantity),
        "mode": p.mode,
        "openedAt": _time(pos.opened_at),
        "pnlR": r,
        "pnlUsd": _float(v.unrealized_pnl),
        "unrealizedPnlR": r,
        "unrealizedPnlUsd": _float(v.unrealized_pnl),
    }


def order_out(order: Order) -> dict[str, Any]:
    filled_at = order.updated_at if order.status is OrderStatus.FILLED else None
    return {
        "id": order.id,
        "symbol": slash(order.symbol),
        "side": order.side.value,
        "type": order.type.value,
        "qty": _float(order.quantity if order.quantity is not None else order.filled_quantity),
        "price": _float(order.avg_fill_price or order.price or order.stop_price),
        "status": order.status.value,
        "createdAt": _time(order.created_at),
        "filledAt": _time(filled_at),
        "fees": _float(order.fees),
        "strategy": order.strategy,
    }


def scan_out(result: ScanResult) -> dict[str, Any]:
    return {
        "candidates": [{"symbol": c.instrument.id.spell("slash"), "score": c.score, "filters": c.filters,
                        "metrics": c.metrics, "levels": c.levels} for c in result.candidates],
        "totalScanned": result.total_scanned,
        "passedFilters": result.passed_filters,
    }


def scanner_status_out(status: ScannerStatus) -> dict[str, Any]:
    return {"status": status.status, "last_scan": _time(status.last_scan),
            "candidates_found": status.candidates_found, "scan_duration_ms": status.scan_duration_ms}


def equity_out(points: list[EquityPoint]) -> list[dict[str, Any]]:
    return [{"timestamp": iso_utc(p.at), "value": round(p.value, 10), "cumulativeR": p.cumulative_r} for p in points]
