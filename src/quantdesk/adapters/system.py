"""Machine figures from psutil (CPU, RAM, disk), used by health and the job admission."""

from __future__ import annotations

import psutil


def resource_figures() -> dict[str, float]:
    """Non-blocking CPU % (since the previous call) and memory %."""
    vm = psutil.virtual_memory()
    return {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "memory_percent": float(vm.percent),
        "memory_available_gb": round(vm.available / 1024**3, 2),
        "memory_total_gb": round(vm.total / 1024**3, 2),
        "cpu_count": float(psutil.cpu_count() or 1),
    }
