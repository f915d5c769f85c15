"""ML backend "Trading Strategies": registered strategy types and the caller's configured strategies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from quantdesk.services.ml_strategies import ConfiguredStrategies, ConfiguredStrategy
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse

router = APIRouter(prefix="/api/strategies", tags=["mlbackend"])


def strategies_of(request: Request) -> ConfiguredStrategies:
    return request.app.state.ml_strategies


Strategies = Annotated[ConfiguredStrategies, Depends(strategies_of)]


# name and type are checked by the service (400 naming the field); params by the type's schema
class StrategyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    params: dict[str, Any] | None = None
    status: Literal["active", "inactive"] = "inactive"


class StrategyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    type: str | None = None
    params: dict[str, Any] | None = None
    status: Literal["active", "inactive"] | None = None


def _out(strategy: ConfiguredStrategy) -> dict[str, Any]:
    return {
        "id": strategy.id, "name": strategy.name, "type": strategy.type, "status": strategy.status,
        "params": strategy.params, "created_at": strategy.created_at, "updated_at": strategy.updated_at,
    }


@router.get("/available")
def available_strategies(principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Registered strategy types with their parameter schemas."""
    return JsonResponse(strategies.available())


@router.get("/")
@router.get("", include_in_schema=False)
def list_strategies(principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """The caller's configured strategies, oldest first."""
    return JsonResponse([_out(s) for s in strategies.list_strategies(principal.user_id)])


@router.post("/")
@router.post("", include_in_schema=False)
def create_strategy(body: StrategyCreate, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Configure a strategy (a registered type with validated parameters)."""
    return JsonResponse(_out(strategies.create(principal.user_id, name=body.name, strategy_type=body.type, params=body.params,
                                  active=body.status == "active")))


@router.get("/{strategy_id}")
def get_strategy(strategy_id: str, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """One of the caller's strategies."""
    return JsonResponse(_out(strategies.get(principal.user_id, strategy_id)))


@router.put("/{strategy_id}")
def update_strategy(strategy_id: str, body: StrategyUpdate, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Change a strategy; params merge into the current ones."""
    active = None if body.status is None else body.status == "active"
    return JsonResponse(_out(strategies.update(principal.user_id, strategy_id, name=body.name, strategy_type=body.type,
                                  params=body.params, active=active)))


@router.delete("/{strategy_id}")
def delete_strategy(strategy_id: str, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Delete a strategy; answers with what it was."""
    out = _out(strategies.delete(principal.user_id, strategy_id))
    out["message"] = "Strategy deleted successfully"
    return JsonResponse(out)


@router.post("/{strategy_id}/activate")
def activate_strategy(strategy_id: str, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Set the strategy's status to active."""
    return JsonResponse(_out(strategies.activate(principal.user_id, strategy_id)))


@router.post("/{strategy_id}/deactivate")
def deactivate_strategy(strategy_id: str, principal: CurrentUser, strategies: Strategies) -> JsonResponse:
    """Set the strategy's status to inactive."""
    return JsonResponse(_out(strategies.deactivate(principal.user_id, strategy_id)))
