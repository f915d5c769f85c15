"""A tiny threaded HTTP server on a free 127.0.0.1 port: routes, a request log and fault injection.

Each fake (Binance, Yahoo, OpenAlgo) registers handlers for ``(method, path)``; a handler
takes a :class:`Request` and returns a :class:`Response`. Tests read ``requests`` to count
calls and queue faults with :meth:`FakeServer.fail` (a status and body served instead of the
real answer, a given number of times or forever).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    raw_query: str = ""  # as sent, for fakes that verify a signature over it

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(payload, separators=(",", ":")).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


@dataclass
class Fault:
    path: str
    response: Response
    remaining: int | None  # None: forever


Handler = Callable[[Request], Response]


def free_port() -> int:
    """A port nothing listens on right now (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """Threaded HTTP server dispatching to registered routes; use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- set-up ---------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        """Serve every path starting with ``prefix`` (e.g. ``/v8/finance/chart/``) with ``handler``."""
        self.prefix_routes[(method.upper(), prefix)] = handler

    def fail(
        self,
        path: str,
        status: int = 500,
        body: bytes | str | dict | list = b"",
        *,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` (None: all of them) with this response."""
        if isinstance(body, dict | list):
            response = Response.json(body, status, headers)
        else:
            raw = body.encode() if isinstance(body, str) else body
            response = Response(
                status, raw, {"Content-Type": content_type or "text/plain", **(headers or {})}
            )
        if content_type:
            response.headers["Content-Type"] = content_type
        with self._lock:
            self._faults.append(Fault(path, response, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    # ---- life cycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    body=self.rfile.read(length) if length else b"",
                    headers={k.lower(): v for k, v in self.headers.items()},
                    raw_query=parts.query,
                )
                response = fake._dispatch(request)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- dispatch -------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.path == request.path and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.response
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            handler = next(
                (
                    h
                    for (m, p), h in self.prefix_routes.items()
                    if m == request.method and request.path.startswith(p)
                ),
                None,
            )
        if handler is None:
            return self.not_found(request)
        return handler(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, b"Not Found", {"Content-Type": "text/plain"})
