"""The JobScheduler port on APScheduler 3 (BackgroundScheduler, one date-triggered job per key).

The services compute every next run themselves (NSE hours and holidays, IST times); this
adapter only fires a callback at an instant, on its own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

log = logging.getLogger(__name__)


class ApsJobScheduler:
    """Run callbacks at aware instants; a run missed by up to ``misfire_grace_s`` still happens."""

    def __init__(self, misfire_grace_s: int = 300):
        self._scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_s})

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def run_at(self, key: str, when: datetime, fn: Callable[[], None]) -> None:
        if when.tzinfo is None:
            raise ValueError(f"naive datetime {when!r} refused; pass an aware UTC datetime")
        self._scheduler.add_job(fn, DateTrigger(run_date=when.astimezone(UTC)), id=key, replace_existing=True)

    def cancel(self, key: str) -> None:
        try:
            self._scheduler.remove_job(key)
        except JobLookupError:
            pass

    def pending(self) -> dict[str, datetime]:
        """Pending runs by key (for tools and tests)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}
