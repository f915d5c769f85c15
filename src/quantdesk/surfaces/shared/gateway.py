"""The gateway every HTTP request passes: request id, body limits, authentication, CSRF, rate limits.

It runs before routing and body validation, so a request without credentials gets 401 (in the
owning surface's error format) whatever its body, and a refused request changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Protocol
from urllib.parse import parse_qs, quote

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantdesk.core.errors import (
    AuthenticationError,
    CsrfError,
    PayloadTooLargeError,
    QuantdeskError,
    RateLimitedError,
)
from quantdesk.services.accounts import AccountService, Principal
from quantdesk.surfaces.shared.errors import ErrorRouter, internal_error

log = logging.getLogger("quantdesk.gateway")

SESSION_COOKIE = "qd_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateWindow(Protocol):
    count: int
    reset_at_s: int


class RateCounter(Protocol):
    async def hit(self, key: str) -> RateWindow: ...


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute per credential; 0 disables a category."""

    read: int = 100
    write: int = 30
    backtest: int = 5

    def category(self, method: str, path: str) -> tuple[str, int]:
        if method not in SAFE_METHODS and "backtest" in path:
            return "backtest", self.backtest
        if method in SAFE_METHODS:
            return "read", self.read
        return "write", self.write


class BodyTooLarge(Exception):
    pass


class Gateway:
    """Pure ASGI middleware (no per-request task switching, so it adds microseconds, not milliseconds)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        accounts: AccountService,
        errors: ErrorRouter,
        counter: RateCounter,
        limits: RateLimits,
        public: set[tuple[str, str]],
        passthrough_prefixes: tuple[str, ...] = (),
        max_body_bytes: int = 1024 * 1024,
        max_upload_bytes: int = 10 * 1024 * 1024,
        run_sync: Callable[..., Awaitable] | None = None,
    ):
        self.app = app
        self.accounts = accounts
        self.errors = errors
        self.counter = counter
        self.limits = limits
        self.public = public
        self.passthrough = passthrough_prefixes
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes
        self._run_sync = run_sync

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(self.passthrough):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method: str = scope["method"]
        request_id = headers.get("x-request-id") or "req_" + secrets.token_hex(6)
        scope.setdefault("state", {})["request_id"] = request_id
        extra_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + extra_headers
            await send(message)

        try:
            # 1. body size, declared
            is_multipart = headers.get("content-type", "").startswith("multipart/")
            limit = self.max_upload + 64 * 1024 if is_multipart else self.max_body
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the {limit}-byte limit")

            # 2. who is calling
            principal = await self._authenticate(scope, headers, method)
            if principal is None and (method, path) not in self.public:
                if method == "GET" and self._wants_page(path, headers):
                    target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
                    await RedirectResponse(f"/login?next={quote(target)}", status_code=303)(scope, receive, send)
                    return
                raise AuthenticationError("authentication required: send a bearer token or X-API-Key")
            scope["state"]["principal"] = principal

            # 3. CSRF for cookie sessions on unsafe methods
            if principal is not None and principal.via == "session" and method not in SAFE_METHODS:
                if not self.accounts.csrf_matches(principal, headers.get("x-csrftoken") or headers.get("x-csrf-token")):
                    raise CsrfError("missing or wrong CSRF token: send the page's csrf-token in X-CSRFToken")

            # 4. rate limits per credential
            rate_key = principal.credential if principal else "ip:" + (scope.get("client") or ("?",))[0]
            category, allowed = self.limits.category(method, path)
            if principal is None:  # public endpoints: only the login forms are counted, per client address
                category, allowed = ("login", self.limits.write) if "login" in path else ("public", 0)
            if allowed:
                window = await self.counter.hit(f"{category}:{rate_key}")
                remaining = max(0, allowed - window.count)
                extra_headers += [
                    (b"x-ratelimit-limit", str(allowed).encode()),
                    (b"x-ratelimit-remaining", str(remaining).encode()),
                    (b"x-ratelimit-reset", str(window.reset_at_s).encode()),
                ]
                if window.count > allowed:
                    retry = max(1, window.reset_at_s - int(time.time()))
                    extra_headers.append((b"retry-after", str(retry).encode()))
                    raise RateLimitedError(retry, limit=allowed, reset_at_s=window.reset_at_s)

            await self.app(scope, self._limited_receive(scope, receive, limit), send_wrapper)
        except BodyTooLarge:
            if not started:
                await self._error(scope, receive, send_wrapper, PayloadTooLargeError(f"request body exceeds the {limit}-byte limit"))
        except QuantdeskError as err:
            if not started:
                await self._error(scope, receive, send_wrapper, err)
        except Exception:
            log.exception("unhandled error [%s] %s %s", request_id, method, path)
            if not started:
                await self._error(scope, receive, send_wrapper, internal_error(request_id))

    async def _error(self, scope: Scope, receive: Receive, send: Send, err: QuantdeskError) -> None:
        response = self.errors.response(scope["path"], err, scope["state"]["request_id"])
        del response.headers["x-request-id"]  # the send wrapper adds it
        await response(scope, receive, send)

    @staticmethod
    def _limited_receive(scope: Scope, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # the framework may wrap this in its own 400; the flag lets the handler say 413
                    scope["state"]["body_too_large"] = limit
                    raise BodyTooLarge()
            return message

        return wrapped

    @staticmethod
    def _wants_page(path: str, headers: Headers) -> bool:
        if path.startswith(("/api/", "/scan/api", "/ws", "/socket.io")):
            return False
        return "text/html" in headers.get("accept", "")

    async def _authenticate(self, scope: Scope, headers: Headers, method: str) -> Principal | None:
        """Bearer header, X-API-Key, ?token= (GET only: SSE and downloads), then the session cookie."""
        auth = headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("Authorization header must be 'Bearer <token>'")
            return await self._call(self.accounts.principal_from_any, token.strip())
        key = headers.get("x-api-key")
        if key:
            return await self._call(self.accounts.principal_from_api_key, key.strip())
        if method == "GET" and scope.get("query_string"):
            token = parse_qs(scope["query_string"].decode("latin-1")).get("token")
            if token:
                return await self._call(self.accounts.principal_from_any, token[0])
        cookie_header = headers.get("cookie")
        if cookie_header:
            cookies = SimpleCookie()
            try:
                cookies.load(cookie_header)
            except Exception:
                return None
            morsel = cookies.get(SESSION_COOKIE)
            if morsel is not None and morsel.value:
                try:
                    return await self._call(self.accounts.principal_from_session, morsel.value)
                except AuthenticationError:
                    return None  # a stale cookie is the same as none: the page redirects to /login
        return None

    async def _call(self, fn: Callable[[str], Principal], arg: str) -> Principal:
        if self._run_sync is not None:
            return await self._run_sync(fn, arg)
        return fn(arg)
