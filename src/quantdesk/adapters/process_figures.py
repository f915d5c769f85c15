"""Process and machine figures from psutil for the Breakout surface's ``/api/metrics/*``."""

from __future__ import annotations

import contextlib
import os

import psutil


def process_figures(disk_path: str = "/") -> dict[str, float]:
    """CPU % (since the previous call), memory % and this process's MB, disk %, threads, open files, sockets."""
    process = psutil.Process(os.getpid())
    figures = {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "memory_percent": float(psutil.virtual_memory().percent),
        "memory_used_mb": round(process.memory_info().rss / 1024**2, 1),
        "disk_usage_percent": float(psutil.disk_usage(disk_path).percent),
        "active_threads": process.num_threads(),
        "open_files": 0,
        "network_connections": 0,
    }
    # some platforms refuse these to unprivileged processes: the figure stays 0
    with contextlib.suppress(psutil.Error, OSError):
        figures["open_files"] = len(process.open_files())
    with contextlib.suppress(psutil.Error, OSError):
        figures["network_connections"] = len(process.net_connections(kind="inet"))
    return figures
