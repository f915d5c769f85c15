"""ML backend "API Keys Management": the caller's exchange credentials, stored sealed, listed as hints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from quantdesk.services.key_vault import KeyVault, KeyView
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse

router = APIRouter(prefix="/api/keys", tags=["mlbackend"])


def vault_of(request: Request) -> KeyVault:
    return request.app.state.key_vault


Vault = Annotated[KeyVault, Depends(vault_of)]


# lengths and spellings are checked by the vault, whose messages never echo a key or a secret
class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: str
    environment: str
    api_key: str
    api_secret: str
    label: str | None = None


class ApiKeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None
    api_secret: str | None = None
    label: str | None = None
    environment: str | None = None


def _out(view: KeyView) -> dict[str, Any]:
    return {
        "id": view.id, "provider_id": view.provider_id, "provider_name": view.provider_name,
        "environment": view.environment, "label": view.label, "api_key_hint": view.api_key_hint,
        "api_secret_hint": view.api_secret_hint, "created_at": view.created_at,
    }


@router.get("/")
@router.get("", include_in_schema=False)
def list_keys(principal: CurrentUser, vault: Vault) -> JsonResponse:
    """The caller's stored exchange keys (hints only)."""
    return JsonResponse([_out(v) for v in vault.list_keys(principal.user_id)])


@router.post("/")
@router.post("", include_in_schema=False)
def store_key(body: ApiKeyCreate, principal: CurrentUser, vault: Vault) -> JsonResponse:
    """Store exchange API credentials, encrypted."""
    view = vault.store_key(principal.user_id, provider_id=body.provider_id, environment=body.environment,
                           api_key=body.api_key, api_secret=body.api_secret, label=body.label)
    return JsonResponse({"id": view.id, "message": "API key stored successfully"})


@router.put("/{api_key_id}")
def update_key(api_key_id: str, body: ApiKeyUpdate, principal: CurrentUser, vault: Vault) -> JsonResponse:
    """Change a stored key; omitted fields keep their values."""
    vault.update_key(principal.user_id, api_key_id, api_key=body.api_key, api_secret=body.api_secret,
                     label=body.label, environment=body.environment)
    return JsonResponse({"message": "API key updated successfully"})


@router.delete("/{api_key_id}")
def delete_key(api_key_id: str, principal: CurrentUser, vault: Vault) -> JsonResponse:
    """Deactivate (soft delete) a stored key."""
    vault.delete_key(principal.user_id, api_key_id)
    return JsonResponse({"message": "API key deleted successfully"})
