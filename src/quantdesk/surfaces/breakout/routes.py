"""Breakout REST API (4-breakout-bot-api.md): parse, call the Breakout service, shape the reply."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from quantdesk.services.breakout import BreakoutService
from quantdesk.surfaces.breakout import schemas as s
from quantdesk.surfaces.shared.auth import CurrentUser

router = APIRouter(tags=["breakout"])


def _breakout(request: Request) -> BreakoutService:
    return request.app.state.breakout


Breakout = Annotated[BreakoutService, Depends(_breakout)]
Reply = dict[str, Any]


def _now(svc: BreakoutService) -> datetime:
    return svc.clock.now()


@router.get("/api/engine/status")
async def engine_status(user: CurrentUser, svc: Breakout) -> Reply:
    """Engine state, preset, mode, slots and today's R."""
    return s.status_out(await svc.status(user.user_id))


@router.get("/api/engine/metrics")
async def engine_metrics(user: CurrentUser, svc: Breakout) -> Reply:
    """Uptime, cycles, latency, signals, trades and R of the engine."""
    return await svc.metrics(user.user_id)


@router.post("/api/engine/start")
async def engine_start(user: CurrentUser, svc: Breakout, body: s.EngineStart | None = None) -> Reply:
    """Start the engine with a preset (paper mode)."""
    body = body or s.EngineStart()
    view = await svc.start(user.user_id, preset=body.preset, mode=body.mode)
    if view.state.name == "ERROR":
        return {**s.ack(f"Engine could not start: {view.reason}", _now(svc)), "success": False,
                "state": view.state.name}
    return s.ack("Engine started successfully", _now(svc), state=view.state.name)


@router.post("/api/engine/stop")
async def engine_stop(user: CurrentUser, svc: Breakout) -> Reply:
    """Stop the engine (open positions keep their stop and target)."""
    view = await svc.stop(user.user_id)
    return s.ack("Engine stopped successfully", _now(svc), state=view.state.name)


@router.post("/api/engine/command")
async def engine_command(user: CurrentUser, svc: Breakout, body: s.EngineCommand) -> Reply:
    """Run pause, resume, time_stop, panic_exit, kill_switch or retry."""
    view = await svc.command(user.user_id, body.command)
    return s.ack("Command executed successfully", _now(svc), command=body.command, state=view.state.name)


@router.get("/api/positions")
async def positions(user: CurrentUser, svc: Breakout) -> list[Reply]:
    """Open positions of the account with their R."""
    return [s.position_out(p) for p in await svc.positions(user.user_id)]


@router.get("/api/orders")
async def orders(user: CurrentUser, svc: Breakout) -> list[Reply]:
    """Orders of the account, newest first."""
    return [s.order_out(o) for o in await svc.orders(user.user_id)]


@router.delete("/api/orders/{order_id}")
async def cancel_order(user: CurrentUser, svc: Breakout, order_id: str) -> Reply:
    """Cancel an open order."""
    await svc.cancel_order(user.user_id, order_id)
    return s.ack("Order canceled successfully", _now(svc))


@router.get("/api/presets/")
@router.get("/api/presets", include_in_schema=False)
async def list_presets(user: CurrentUser, svc: Breakout) -> list[Reply]:
    """Available presets."""
    return await svc.presets(user.user_id)


@router.get("/api/presets/{preset_name}")
async def get_preset(user: CurrentUser, svc: Breakout, preset_name: str) -> Reply:
    """One preset's configuration."""
    return {"name": preset_name, "config": await svc.preset(user.user_id, preset_name)}


@router.put("/api/presets/{preset_name}")
async def put_preset(user: CurrentUser, svc: Breakout, preset_name: str,
                     body: Annotated[dict[str, Any], Body()]) -> Reply:
    """Change the sections sent; the others stay."""
    await svc.update_preset(user.user_id, preset_name, body)
    return s.ack("Preset updated successfully", _now(svc))


@router.post("/api/scanner/scan")
async def scan(user: CurrentUser, svc: Breakout, body: s.ScanRequest | None = None) -> Reply:
    """Score symbols for breakouts, best first."""
    body = body or s.ScanRequest()
    return s.scan_out(await svc.scan(user.user_id, preset=body.preset, limit=body.limit, symbols=body.symbols))


@router.get("/api/scanner/status")
async def scanner_status(user: CurrentUser, svc: Breakout) -> Reply:
    """The last scan: when, how long, how many candidates."""
    return s.scanner_status_out(await svc.scanner_status(user.user_id))


@router.get("/api/performance/equity")
async def equity(user: CurrentUser, svc: Breakout) -> list[Reply]:
    """Equity after each closed trade, with cumulative R."""
    return s.equity_out(await svc.equity(user.user_id))


@router.get("/api/performance/metrics")
async def performance(user: CurrentUser, svc: Breakout) -> Reply:
    """Win rate, average R, Sharpe of R, max drawdown in R, profit factor, streaks."""
    return await svc.performance(user.user_id)


@router.get("/api/metrics/summary")
async def metrics_summary(user: CurrentUser, svc: Breakout) -> Reply:
    """System figures and the engine's rolling cycle, position, event and R summaries."""
    return await svc.metrics_summary(user.user_id)


@router.get("/api/metrics/performance")
async def metrics_performance(user: CurrentUser, svc: Breakout) -> Reply:
    """Current system figures (timestamp in epoch seconds)."""
    return {**svc.system(), "timestamp": time.time()}


@router.get("/api/metrics/health")
async def metrics_health(user: CurrentUser, svc: Breakout) -> Reply:
    """Metrics health: issues over CPU or memory thresholds (timestamp in epoch milliseconds)."""
    figures = svc.system()
    issues = [f"high {name.split('_')[0]} usage: {figures[name]:.1f}%" for name in ("cpu_percent", "memory_percent")
              if figures.get(name, 0.0) >= 90.0]
    return {"status": "warning" if issues else "healthy", "issues": issues,
            "metrics_count": await svc.metrics_count(user.user_id),
            "performance": {"cpu_percent": figures.get("cpu_percent", 0.0),
                            "memory_percent": figures.get("memory_percent", 0.0)},
            "timestamp": int(datetime.now(UTC).timestamp() * 1000)}
