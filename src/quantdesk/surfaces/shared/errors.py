"""Error formats per surface, chosen by request path.

Each surface declares an :class:`ErrorFormat` in its own ``errors.py``; the app registers them
with their path prefixes, and the gateway and exception handlers render every error through
the format that owns the path. Route functions never catch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quantdesk.core.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    QuantdeskError,
    UnsupportedMediaError,
)
from quantdesk.surfaces.shared.responses import JsonResponse

log = logging.getLogger("quantdesk.errors")

Renderer = Callable[[QuantdeskError, str], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class ErrorFormat:
    """How one surface spells errors: ``render(err, request_id) -> (status, body)``."""

    name: str
    render: Renderer
    extra_headers: Callable[[QuantdeskError], dict[str, str]] | None = None


def internal_error(request_id: str) -> QuantdeskError:
    return QuantdeskError(f"internal error; quote request id {request_id} when reporting it")


def _detail_render(include_status: bool, validation_status: int) -> Renderer:
    def render(err: QuantdeskError, request_id: str) -> tuple[int, dict[str, Any]]:
        # request-schema errors use the framework's status (422); rule violations found later are 400
        status = validation_status if getattr(err, "from_schema", False) else err.status
        body: dict[str, Any] = {"detail": err.message}
        if include_status:
            body["status_code"] = status
        if isinstance(err, InvalidInputError) and err.errors:
            body["errors"] = err.errors
        if err.code == "RATE_LIMITED":
            body["retry_after"] = err.details.get("retry_after")
        return status, body

    return render


# FastAPI-style {"detail": ...}: the ML backend's documented body and the fallback for unowned paths
DETAIL_FORMAT = ErrorFormat("detail", _detail_render(include_status=False, validation_status=422))


def detail_format(name: str, *, include_status: bool, validation_status: int = 422) -> ErrorFormat:
    return ErrorFormat(name, _detail_render(include_status, validation_status))


class ErrorRouter:
    """Pick the error format owning a path (longest registered prefix wins)."""

    def __init__(self, default: ErrorFormat = DETAIL_FORMAT):
        self.default = default
        self._prefixes: list[tuple[str, ErrorFormat]] = []

    def add(self, prefixes: Sequence[str], fmt: ErrorFormat) -> None:
        self._prefixes.extend((p, fmt) for p in prefixes)
        self._prefixes.sort(key=lambda x: len(x[0]), reverse=True)

    def for_path(self, path: str) -> ErrorFormat:
        for prefix, fmt in self._prefixes:
            if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
                return fmt
        return self.default

    def response(self, path: str, err: QuantdeskError, request_id: str) -> JsonResponse:
        fmt = self.for_path(path)
        status, body = fmt.render(err, request_id)
        headers = {"X-Request-ID": request_id}
        if fmt.extra_headers:
            headers.update(fmt.extra_headers(err))
        return JsonResponse(body, status_code=status, headers=headers)


def field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")]
    return ".".join(parts) or "body"


def from_validation(exc: RequestValidationError) -> InvalidInputError:
    """Turn FastAPI/Pydantic validation errors into one InvalidInputError naming every field."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        field = field_name(e.get("loc", ()))
        kind = e.get("type", "")
        if kind == "json_invalid":
            msg = "request body is not valid JSON" + (f" ({e['ctx']['error']})" if e.get("ctx") else "")
            field = "body"
        elif kind == "extra_forbidden":
            msg = f"unknown field {field!r}"
        elif kind == "missing":
            msg = f"{field} is required"
        else:
            msg = f"{field}: {e.get('msg', 'invalid value')}"
        errors.setdefault(field, msg)
    first_field, first_msg = next(iter(errors.items()), ("body", "invalid request"))
    err = InvalidInputError(first_msg, field=first_field, errors=errors)
    err.from_schema = True
    return err


def from_http(exc: StarletteHTTPException) -> QuantdeskError:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        return NotFoundError("resource", message=detail if detail != "Not Found" else "resource not found")
    if exc.status_code == 401:
        return AuthenticationError(detail)
    if exc.status_code == 403:
        return ForbiddenError(detail)
    if exc.status_code == 409:
        return ConflictError(detail)
    if exc.status_code == 413:
        return PayloadTooLargeError(detail)
    if exc.status_code == 415:
        return UnsupportedMediaError(detail)
    if exc.status_code == 405:
        err = InvalidInputError(detail, code="METHOD_NOT_ALLOWED")
        err.status = 405
        return err
    err = InvalidInputError(detail)
    err.status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return err


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "req_unknown"


def install_handlers(app: FastAPI, router: ErrorRouter) -> None:
    """Register exception handlers rendering the core error tree in each surface's format."""

    @app.exception_handler(QuantdeskError)
    async def _quantdesk(request: Request, exc: QuantdeskError):
        return router.response(request.url.path, exc, request_id_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return router.response(request.url.path, from_validation(exc), request_id_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        limit = getattr(request.state, "body_too_large", None)
        if limit:
            err: QuantdeskError = PayloadTooLargeError(f"request body exceeds the {limit}-byte limit")
        else:
            err = from_http(exc)
        return router.response(request.url.path, err, request_id_of(request))
