"""Browser login (cookie session + CSRF token) and the landing page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from quantdesk.core.errors import AuthenticationError
from quantdesk.surfaces.shared.auth import Accounts, CurrentUser
from quantdesk.surfaces.shared.gateway import SESSION_COOKIE

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)

SURFACES = [
    {"title": "FluxScan scanner", "text": "User-written Python scanners over watchlists.", "prefix": "/api/scanners",
     "ready": True},
    {"title": "Crypto Scalper", "text": "Orders, positions, P&L, strategies and backtests.", "prefix": "/api/v1",
     "ready": True},
    {"title": "ML backend", "text": "Market data, tasks, key vault, strategies, LightGBM models, predictions, portfolio.",
     "prefix": "/api/market, /api/system", "ready": True},
    {"title": "Python Strategies", "text": "Host uploaded strategy scripts as processes.", "prefix": "/python",
     "ready": True},
    {"title": "Breakout engine", "text": "State machine, presets, scoring, R analytics.", "prefix": "/api/engine",
     "ready": True},
]


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"  # never redirect off-site
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "csrf_token": None})


@router.post("/login")
def login_submit(
    request: Request,
    accounts: Accounts,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        user = accounts.authenticate_password(username, password)
    except AuthenticationError as err:
        return templates.TemplateResponse(
            request, "login.html",
            {"next": _safe_next(next), "error": err.message, "username": username, "csrf_token": None},
            status_code=401,
        )
    cookie, _csrf = accounts.issue_session(user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=accounts.session_ttl_s, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )
    return response


@router.post("/logout")
def logout(principal: CurrentUser) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def index(request: Request, principal: CurrentUser) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "index.html",
        {"username": principal.username, "role": principal.role.value, "surfaces": SURFACES,
         "csrf_token": csrf_for(principal)},
    )


def csrf_for(principal) -> str | None:
    """The CSRF token a page must embed (only cookie sessions carry one)."""
    return principal.csrf
