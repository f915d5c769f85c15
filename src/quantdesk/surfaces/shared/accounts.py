"""Login, API keys and user management over HTTP (``/api/v1/auth``), used by every client."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from quantdesk.services.accounts import ApiKey
from quantdesk.surfaces.shared.auth import Accounts, AdminUser, CurrentUser

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=128)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False


class ApiKeyCreated(ApiKeyOut):
    api_key: str


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: str = Field("user", pattern="^(admin|user)$")


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    created_at: datetime | None = None


def _key_out(key: ApiKey) -> dict:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "created_at": key.created_at,
        "last_used_at": key.last_used_at, "revoked": key.revoked_at is not None,
    }


@router.post("/login", response_model=TokenOut)
def login(body: LoginIn, accounts: Accounts) -> TokenOut:
    """Exchange a username and password for a bearer JWT."""
    user = accounts.authenticate_password(body.username, body.password)
    token, ttl = accounts.issue_token(user)
    return TokenOut(access_token=token, expires_in=ttl)


@router.get("/me", response_model=UserOut)
def me(principal: CurrentUser) -> UserOut:
    """Who the credential belongs to."""
    return UserOut(id=principal.user_id, username=principal.username, role=principal.role.value)


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, principal: CurrentUser, accounts: Accounts) -> dict:
    """Create an API key; its value is shown only in this reply."""
    key, raw = accounts.create_api_key(principal, body.name)
    return {**_key_out(key), "api_key": raw}


@router.get("/api-keys")
def list_api_keys(principal: CurrentUser, accounts: Accounts) -> dict:
    """List the caller's API keys (never their values)."""
    return {"api_keys": [ApiKeyOut(**_key_out(k)) for k in accounts.list_api_keys(principal)]}


@router.delete("/api-keys/{key_id}")
def revoke_api_key(key_id: int, principal: CurrentUser, accounts: Accounts) -> dict:
    """Revoke one of the caller's API keys; the next request with it gets 401."""
    accounts.revoke_api_key(principal, key_id)
    return {"id": key_id, "revoked": True}


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserCreate, admin: AdminUser, accounts: Accounts) -> UserOut:
    """Create a user (admin only)."""
    user = accounts.create_user(body.username, body.password, body.role)
    return UserOut(id=user.id, username=user.username, role=user.role.value, created_at=user.created_at)


@router.get("/users")
def list_users(admin: AdminUser, accounts: Accounts) -> dict:
    """List users (admin only)."""
    return {
        "users": [
            UserOut(id=u.id, username=u.username, role=u.role.value, created_at=u.created_at)
            for u in accounts.list_users()
        ]
    }


@router.delete("/users/{user_id}")
def delete_user(user_id: int, admin: AdminUser, accounts: Accounts) -> dict:
    """Delete a user and their API keys (admin only)."""
    accounts.delete_user(admin, user_id)
    return {"id": user_id, "deleted": True}
