"""Auth dependencies shared by every surface (the gateway has already authenticated the request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from quantdesk.core.errors import AuthenticationError, ForbiddenError
from quantdesk.services.accounts import AccountService, Principal


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("authentication required: send a bearer token or X-API-Key")
    return principal


def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("this action needs the admin role")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]


def accounts_of(request: Request) -> AccountService:
    return request.app.state.accounts


Accounts = Annotated[AccountService, Depends(accounts_of)]


def authenticate_push(accounts: AccountService, *, token: str | None = None, api_key: str | None = None,
                      headers: dict[str, str] | None = None) -> Principal:
    """Authenticate a WebSocket / Socket.IO / SSE client from a token, an API key or its headers."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    auth = headers.get("authorization", "")
    if token:
        return accounts.principal_from_any(token)
    if api_key:
        return accounts.principal_from_api_key(api_key)
    if auth.lower().startswith("bearer "):
        return accounts.principal_from_any(auth[7:].strip())
    if headers.get("x-api-key"):
        return accounts.principal_from_api_key(headers["x-api-key"])
    raise AuthenticationError("authentication required")


def websocket_principal_from_handshake(ws: WebSocket, accounts: AccountService) -> Principal | None:
    """Principal from ``?token=`` or the handshake headers, or None when the client will send an auth message."""
    token = ws.query_params.get("token")
    try:
        return authenticate_push(accounts, token=token, headers=dict(ws.headers))
    except AuthenticationError:
        if token or ws.headers.get("authorization") or ws.headers.get("x-api-key"):
            raise
        return None
