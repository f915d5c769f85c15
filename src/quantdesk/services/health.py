"""System health: the union of fields the surfaces document for ``GET /api/health``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

CPU_WARN = 90.0
MEMORY_WARN = 90.0


class HealthService:
    """Combine dependency checks, engine state and resource figures into one report.

    ``checks`` map a part's name to a callable that raises when that part is down;
    ``resources`` returns ``cpu_percent`` and ``memory_percent``.
    """

    def __init__(
        self,
        version: str,
        checks: dict[str, Callable[[], None]],
        resources: Callable[[], dict[str, float]],
        engine_state: Callable[[], tuple[bool, bool]] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.version = version
        self.checks = checks
        self.resources = resources
        self.engine_state = engine_state or (lambda: (False, False))
        self._now = now

    def report(self) -> dict[str, Any]:
        failing: list[str] = []
        for name, check in self.checks.items():
            try:
                check()
            except Exception as exc:  # a health probe must answer whatever broke
                log.warning("health check %s failed: %s", name, exc)
                failing.append(f"{name} unreachable: {type(exc).__name__}")
        figures = self.resources()
        issues: list[str] = []
        if figures.get("cpu_percent", 0.0) >= CPU_WARN:
            issues.append(f"high CPU usage: {figures['cpu_percent']:.1f}%")
        if figures.get("memory_percent", 0.0) >= MEMORY_WARN:
            issues.append(f"high memory usage: {figures['memory_percent']:.1f}%")
        initialized, running = self.engine_state()
        report: dict[str, Any] = {
            "status": "degraded" if failing else "healthy",
            "version": self.version,
            "timestamp": self._now(),
            "engine_initialized": initialized,
            "engine_running": running,
            "resource_health": {
                "status": "warning" if issues else "healthy",
                "issues": issues,
                "cpu_percent": figures.get("cpu_percent", 0.0),
                "memory_percent": figures.get("memory_percent", 0.0),
            },
        }
        if failing:
            report["issues"] = failing
        return report
