"""The machine's cores and RAM from psutil, as the job admission reads them."""

from __future__ import annotations

import os

import psutil

from quantdesk.services.job_ports import MachineResources


def machine_resources() -> MachineResources:
    """Logical CPUs this process may use, total and available RAM in GB (available includes caches)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = psutil.cpu_count() or 1
    vm = psutil.virtual_memory()
    return MachineResources(float(cores), vm.total / 1024**3, vm.available / 1024**3)
