"""ML backend "Predictions": predict with the caller's freshest model, in the background or at once; stored."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import StreamingResponse

from quantdesk.core.errors import QuantdeskError
from quantdesk.services.job_ports import JobStatus
from quantdesk.services.ml_models import MlModels, PredictionRecord
from quantdesk.surfaces.mlbackend.models import ml_models_of
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse, dumps

router = APIRouter(prefix="/api/predictions", tags=["mlbackend"])

Models = Annotated[MlModels, Depends(ml_models_of)]
Symbol = Annotated[str, Query(min_length=1, max_length=40)]
Tf = Annotated[str, Query(min_length=1, max_length=8)]


def prediction_body(p: PredictionRecord) -> dict[str, Any]:
    body: dict[str, Any] = {"id": p.id, "prediction_id": p.id, "status": p.status, "symbol": p.symbol,
                            "timeframe": p.timeframe, "model_name": p.model_name, "created_at": p.created_at,
                            "completed_at": p.completed_at, "task_id": p.task_id}
    if p.result is not None:
        body.update(p.result)
    if p.error is not None:
        body["error"] = p.error
    return body


def _item(p: PredictionRecord) -> dict[str, Any]:
    return {"id": p.id, "symbol": p.symbol, "timeframe": p.timeframe, "status": p.status,
            "model_name": p.model_name, "created_at": p.created_at}


@router.get("/")
@router.get("", include_in_schema=False)
async def predict(principal: CurrentUser, models: Models, symbol: Symbol, timeframe: Tf, auto_train: bool = True,
                  force_retrain: bool = False) -> JsonResponse:
    """Predict now with the freshest model (training one first if allowed); the prediction is stored."""
    record = await models.predict(principal, symbol=symbol, timeframe=timeframe, auto_train=auto_train,
                                  force_retrain=force_retrain)
    return JsonResponse(prediction_body(record))


@router.post("/generate")
async def generate(principal: CurrentUser, models: Models, symbol: Symbol, timeframe: Tf,
                   auto_train: bool = True) -> JsonResponse:
    """Start a prediction in the background; fetch it at /api/predictions/{prediction_id}."""
    record, view = await models.generate(principal, symbol=symbol, timeframe=timeframe, auto_train=auto_train)
    job = view.job
    where = f"Check status at /api/predictions/{record.id}"
    if job.status is JobStatus.QUEUED:
        return JsonResponse({"status": "queued", "prediction_id": record.id, "task_id": job.id,
                             "queue_position": view.position, "reason": job.reason,
                             "message": f"Prediction queued. Position in queue: {view.position}. {where}"})
    return JsonResponse({"status": "running", "prediction_id": record.id, "task_id": job.id,
                         "message": f"Prediction started. {where}"})


@router.get("/list")
async def list_predictions(principal: CurrentUser, models: Models, symbol: str | None = None,
                           timeframe: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> JsonResponse:
    """The caller's predictions, newest first."""
    found = await models.predictions(principal, symbol=symbol, timeframe=timeframe, limit=limit)
    return JsonResponse([_item(p) for p in found])


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


@router.get("/stream")
async def stream(principal: CurrentUser, models: Models, symbol: Symbol, timeframe: Tf,
                 auto_train: bool = True) -> StreamingResponse:
    """Server-Sent Events: status steps (check, fetch, train, predict), then complete or error."""
    async def events():
        queue: asyncio.Queue = asyncio.Queue()

        async def progress(step: str, title: str, message: str) -> None:
            await queue.put(("status", {"step": step, "status": "in-progress", "title": title, "message": message}))

        async def run() -> None:
            try:
                record = await models.predict(principal, symbol=symbol, timeframe=timeframe, auto_train=auto_train,
                                              progress=progress)
                await queue.put(("complete", prediction_body(record)))
            except QuantdeskError as exc:
                await queue.put(("error", {"message": exc.message}))
            except Exception as exc:  # the stream's last word: say it failed rather than hang up
                await queue.put(("error", {"message": f"prediction failed: {type(exc).__name__}"}))

        task = asyncio.create_task(run())
        try:
            while True:
                name, data = await queue.get()
                yield _event(name, data)
                if name in ("complete", "error"):
                    return
        finally:
            if not task.done():
                task.cancel()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/{prediction_id}")
async def get_prediction(prediction_id: str, principal: CurrentUser, models: Models) -> JsonResponse:
    """One of the caller's predictions: its result once completed."""
    return JsonResponse(prediction_body(await models.prediction(principal, prediction_id)))
