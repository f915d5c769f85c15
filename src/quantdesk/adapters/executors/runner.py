"""Run one job function inside a worker (a local process or a Ray task), the same way everywhere."""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from typing import Any

from quantdesk.services.job_ports import JobCancelledError, resolve_target

log = logging.getLogger(__name__)

# at most one progress message per interval, unless the description changes or the job ends
PROGRESS_INTERVAL_S = 0.05

Emit = Callable[[float, str | None, dict[str, Any] | None], None]


class WorkerContext:
    """The ``ctx`` a job function receives: throttled progress reports and a cancellation check."""

    def __init__(self, job_id: str, emit: Emit, poll_cancel: Callable[[], bool] | None = None):
        self.job_id = job_id
        self._emit = emit
        self._poll_cancel = poll_cancel
        self._cancelled = False
        self._last_sent = 0.0
        self._last_description: str | None = None

    @property
    def cancelled(self) -> bool:
        if not self._cancelled and self._poll_cancel is not None and self._poll_cancel():
            self._cancelled = True
        return self._cancelled

    def check(self) -> None:
        """Raise JobCancelledError once the job has been asked to stop."""
        if self.cancelled:
            raise JobCancelledError(self.job_id)

    def progress(self, pct: float, description: str | None = None, detail: dict[str, Any] | None = None) -> None:
        self.check()
        pct = float(pct)
        if not math.isfinite(pct):
            return
        now = time.monotonic()
        changed = description is not None and description != self._last_description
        if changed or pct >= 100.0 or now - self._last_sent >= PROGRESS_INTERVAL_S:
            self._last_sent = now
            if description is not None:
                self._last_description = description
            self._emit(min(100.0, max(0.0, pct)), description, detail)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity (PostgreSQL refuses them): report them as null
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def run_job(ctx: WorkerContext, target: str, params: dict[str, Any]) -> tuple[str, dict | None, str | None]:
    """Call the job function; return ``(kind, result, error)`` with kind completed, failed or cancelled.

    Never raises for the job's own errors: they become ``failed`` with a one-line message (the
    traceback is logged in the worker).
    """
    try:
        fn = resolve_target(target)
        result = fn(ctx, **params)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(f"job returned {type(result).__name__}; a job must return a dict")
        return "completed", _finite(json.loads(json.dumps(result, default=_plain))), None
    except JobCancelledError:
        return "cancelled", None, None
    except Exception as exc:  # the job runner is a boundary: report, never crash the worker
        log.debug("job %s failed:\n%s", ctx.job_id, traceback.format_exc())
        return "failed", None, f"{type(exc).__name__}: {exc}"
