"""ML backend "ML Models": the caller's trained LightGBM models and training (a job in the task queue)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from quantdesk.services.job_ports import JobStatus
from quantdesk.services.ml_models import MlModels, ModelRecord
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse

router = APIRouter(prefix="/api/models", tags=["mlbackend"])


def ml_models_of(request: Request) -> MlModels:
    return request.app.state.ml_models


Models = Annotated[MlModels, Depends(ml_models_of)]


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=40)
    timeframe: str = Field(min_length=1, max_length=8)
    n_steps_ahead: int = Field(300, description="bars ahead the model predicts")
    days_history: int = Field(30, description="days of history to train on")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="training seed (same seed and bars: same model)")
    n_estimators: int = Field(200, ge=1, le=5000, description="boosting rounds")
    wait: bool = Field(True, description="answer with the model when training starts at once (else the task)")


def model_body(model: ModelRecord, *, detail: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": model.name, "type": model.type, "symbol": model.symbol, "timeframe": model.timeframe,
        "n_steps_ahead": model.n_steps_ahead, "model_size_kb": round(model.size_bytes / 1024, 2),
        "trained_at": model.trained_at, "performance": model.performance,
    }
    if detail:
        d = model.details
        body.update(feature_importance=d.get("feature_importance", []), features=d.get("features", []),
                    training={k: d.get(k) for k in ("bars", "train_rows", "val_rows", "split_at", "seed",
                                                    "n_estimators", "learning_rate", "anchors")},
                    task_id=model.task_id)
    return body


@router.get("/")
@router.get("", include_in_schema=False)
async def list_models(principal: CurrentUser, models: Models) -> JsonResponse:
    """The caller's trained models, newest first."""
    return JsonResponse([model_body(m) for m in await models.models(principal)])


@router.get("/{model_name}")
async def get_model(model_name: str, principal: CurrentUser, models: Models) -> JsonResponse:
    """One of the caller's models, with feature importance and training details."""
    return JsonResponse(model_body(await models.model(principal, model_name), detail=True))


@router.post("/train")
async def train_model(body: TrainRequest, principal: CurrentUser, models: Models) -> JsonResponse:
    """Train a model as a task: the model when it ran at once, else the queued task."""
    outcome = await models.train(principal, symbol=body.symbol, timeframe=body.timeframe,
                                 n_steps_ahead=body.n_steps_ahead, days_history=body.days_history, seed=body.seed,
                                 n_estimators=body.n_estimators, wait=body.wait)
    job = outcome.job.job
    if outcome.model is not None:
        return JsonResponse({**model_body(outcome.model, detail=True), "status": "completed", "task_id": job.id})
    if job.status is JobStatus.QUEUED:
        return JsonResponse({
            "status": "queued", "task_id": job.id, "name": outcome.name, "queue_position": outcome.job.position,
            "reason": job.reason,
            "message": f"Model training queued due to insufficient resources. Position in queue: "
                       f"{outcome.job.position}" if job.reason and job.reason.startswith("Insufficient")
            else f"Model training queued. Position in queue: {outcome.job.position}",
        })
    return JsonResponse({"status": job.status.value, "task_id": job.id, "name": outcome.name,
                         "message": f"Model training started. Check status at /api/system/tasks/{job.id}"})
