"""ML backend "Backtests": the caller's backtests (a registered strategy or a model's signals) on the one engine."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from quantdesk.core.errors import InvalidInputError, QuantdeskError
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.ml_models import BacktestRecord, MlModels
from quantdesk.surfaces.mlbackend.models import ml_models_of
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse, dumps

router = APIRouter(prefix="/api/backtests", tags=["mlbackend"])

Models = Annotated[MlModels, Depends(ml_models_of)]


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=64, description="a registered strategy, or MLPredictive")
    symbol: str = Field(min_length=1, max_length=40)
    start_date: AwareDatetime
    end_date: AwareDatetime
    initial_capital: float = Field(10_000.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    timeframe: str = Field("1h", min_length=1, max_length=8)
    commission: float = Field(0.0, ge=0, lt=0.1, description="fraction of notional per side")


def _f(x: Any, scale: float = 1.0) -> float | None:
    return None if x is None else float(x) / scale


def _drawdown(pct: Any) -> float | None:
    # the engine reports the drawdown as a positive percent; the ML reference as a negative fraction
    return None if pct is None else -abs(float(pct)) / 100


def backtest_body(b: BacktestRecord, *, detail: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": b.id, "status": b.status, "strategy": b.strategy, "symbol": b.symbol, "timeframe": b.timeframe,
        "start_date": b.start_date, "end_date": b.end_date, "created_at": b.created_at,
        "completed_at": b.completed_at, "task_id": b.task_id, "initial_capital": b.config.get("initial_capital"),
        "params": b.config.get("params", {}),
    }
    if b.error is not None:
        body["error"] = b.error
    result = b.result
    if result is None:
        return body
    m = result.get("metrics", {})
    body["performance"] = {
        "total_return": _f(m.get("total_return_pct"), 100), "sharpe_ratio": _f(m.get("sharpe")),
        "max_drawdown": _drawdown(m.get("max_drawdown_pct")), "win_rate": _f(m.get("win_rate_pct"), 100),
        "sortino_ratio": _f(m.get("sortino")), "calmar_ratio": _f(m.get("calmar")),
    }
    body["trading"] = {
        "total_trades": m.get("total_trades", 0), "winning_trades": m.get("winning_trades", 0),
        "losing_trades": m.get("losing_trades", 0), "avg_win": _f(m.get("avg_win")), "avg_loss": _f(m.get("avg_loss")),
        "avg_trade_duration": _f(m.get("avg_duration_s"), 60), "profit_factor": _f(m.get("profit_factor")),
    }
    body["final_equity"] = result.get("final_equity")
    if detail:
        body.update(bars=result.get("bars"), mode=result.get("mode"), metrics=m, trades=result.get("trades", []),
                    equity_curve=result.get("equity_curve", []), open_position=result.get("open_position"))
    return body


@router.get("/")
@router.get("", include_in_schema=False)
async def list_backtests(principal: CurrentUser, models: Models,
                         limit: int = Query(100, ge=1, le=1000)) -> JsonResponse:
    """The caller's backtests, newest first (failed ones carry ``error``)."""
    return JsonResponse([backtest_body(b) for b in await models.backtests(principal, limit)])


@router.post("/run")
async def run_backtest(body: BacktestRequest, principal: CurrentUser, models: Models) -> JsonResponse:
    """Run a backtest as a task; follow it at /api/backtests/{backtest_id} or the task events."""
    record, view = await models.run_backtest(
        principal, strategy=body.strategy, symbol=body.symbol, start=body.start_date, end=body.end_date,
        initial_capital=body.initial_capital, params=body.params, timeframe=body.timeframe,
        commission=body.commission)
    job = view.job
    if job.status is JobStatus.QUEUED:
        return JsonResponse({"status": "queued", "backtest_id": record.id, "task_id": job.id,
                             "queue_position": view.position, "reason": job.reason,
                             "message": f"Backtest queued. Position in queue: {view.position}"})
    return JsonResponse({"status": "running", "backtest_id": record.id, "task_id": job.id,
                         "message": "Backtest started in background. Check Status Center for progress."})


def _when(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not an ISO date or datetime", field=name) from None
    if when.tzinfo is None:
        raise InvalidInputError(f"{name} {value!r} needs a timezone (e.g. 2025-01-01T00:00:00Z)", field=name)
    return when


@router.get("/stream")
async def stream_backtest(principal: CurrentUser, models: Models,
                          strategy: Annotated[str, Query(min_length=1, max_length=64)],
                          symbol: Annotated[str, Query(min_length=1, max_length=40)],
                          start_date: str, end_date: str, initial_capital: float = Query(10_000.0, gt=0),
                          params: str | None = None, timeframe: str = "1h") -> StreamingResponse:
    """Server-Sent Events: run a backtest and stream its progress, then complete or error."""
    try:
        parsed = json.loads(params) if params else {}
    except ValueError:
        raise InvalidInputError("params must be a JSON object", field="params") from None
    if not isinstance(parsed, dict):
        raise InvalidInputError("params must be a JSON object", field="params")
    request = dict(strategy=strategy, symbol=symbol, start=_when(start_date, "start_date"),
                   end=_when(end_date, "end_date"), initial_capital=initial_capital, params=parsed,
                   timeframe=timeframe)
    events = models.backtest_events(principal, **request)
    first = await anext(events)  # bad input fails here, as a 4xx, before the stream starts

    async def body():
        yield b"event: " + first[0].encode() + b"\ndata: " + dumps(first[1]) + b"\n\n"
        try:
            async for name, data in events:
                yield b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"
        except QuantdeskError as exc:
            yield b"event: error\ndata: " + dumps({"message": exc.message}) + b"\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


@router.get("/{backtest_id}")
async def get_backtest(backtest_id: str, principal: CurrentUser, models: Models) -> JsonResponse:
    """One of the caller's backtests with its performance, trades and equity curve."""
    return JsonResponse(backtest_body(await models.backtest(principal, backtest_id), detail=True))
