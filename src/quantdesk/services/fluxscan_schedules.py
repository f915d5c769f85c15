"""FluxScan schedules: run a scanner over a watchlist every N minutes or daily at an IST time.

Next runs are computed here (pure): an ``interval`` schedule with ``market_hours_only`` runs
only inside NSE sessions (09:15-15:30 IST, weekdays, minus exchange holidays) and otherwise
waits for the next open; a ``daily`` schedule runs at ``run_time`` IST, on trading days only
when ``market_hours_only``. Schedules are persisted with ``next_run_at`` (aware UTC) and
re-registered with the injected :class:`JobScheduler` at start, so they survive restarts; a
run missed while the server was down is skipped, not replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from quantdesk.core.errors import InvalidInputError, NotFoundError, QuantdeskError
from quantdesk.core.sessions import SessionRules
from quantdesk.services.accounts import Principal
from quantdesk.services.fluxscan import IST, FluxScanService, parse_hhmm
from quantdesk.services.fluxscan_ports import FluxScanStore, JobScheduler, Schedule, ScheduleType
from quantdesk.services.fluxscan_scans import ScanService

log = logging.getLogger(__name__)

MAX_INTERVAL_MINUTES = 7 * 24 * 60


def next_run_after(schedule_type: ScheduleType, after: datetime, rules: SessionRules, *,
                   interval_minutes: int | None = None, run_time: str | None = None,
                   market_hours_only: bool = False) -> datetime:
    """The first run strictly after ``after`` (aware UTC in, aware UTC out)."""
    if schedule_type is ScheduleType.INTERVAL:
        candidate = (after + timedelta(minutes=interval_minutes or 0)).replace(microsecond=0)
        if market_hours_only and not rules.is_open(candidate):
            candidate = rules.next_open(candidate)
        return candidate.astimezone(UTC)
    at = parse_hhmm(run_time, "run_time")
    day = after.astimezone(IST).date()
    for _ in range(3660):
        candidate = datetime.combine(day, at, tzinfo=IST)
        if candidate > after and (not market_hours_only or rules.is_trading_day(day)):
            return candidate.astimezone(UTC)
        day += timedelta(days=1)
    raise InvalidInputError("no trading day within ten years", field="run_time")


class ScheduleService:
    """Create, change and fire schedules (the scheduler port fires them)."""

    def __init__(self, store: FluxScanStore, fluxscan: FluxScanService, scans: ScanService,
                 scheduler: JobScheduler, rules: SessionRules, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.fluxscan = fluxscan
        self.scans = scans
        self.scheduler = scheduler
        self.rules = rules
        self._now = now

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> int:
        """Start the scheduler and register every active schedule; return how many."""
        self.scheduler.start()
        count = 0
        now = self._now()
        for schedule in self.store.list_schedules(active_only=True):
            if schedule.next_run_at is None or schedule.next_run_at <= now:
                schedule = self.store.update_schedule(schedule.id, {"next_run_at": self._next(schedule, now)})
            self._register(schedule)
            count += 1
        return count

    def stop(self) -> None:
        """Stop firing schedules (they stay persisted)."""
        self.scheduler.shutdown()

    # ---- queries and commands ----------------------------------------------------------
    def _of(self, principal: Principal, schedule_id: int) -> Schedule:
        schedule = self.store.get_schedule(schedule_id)
        if schedule is None or schedule.owner_id != principal.user_id:
            raise NotFoundError("schedule", schedule_id)
        return schedule

    def list_schedules(self, principal: Principal) -> list[Schedule]:
        """The caller's schedules."""
        return self.store.list_schedules(principal.user_id)

    def get_schedule(self, principal: Principal, schedule_id: int) -> Schedule:
        """One of the caller's schedules (NotFoundError otherwise)."""
        return self._of(principal, schedule_id)

    def create_schedule(self, principal: Principal, *, scanner_id: int, watchlist_id: int, schedule_type: str,
                        interval_minutes: int | None = None, run_time: str | None = None,
                        market_hours_only: bool = False, is_active: bool = True,
                        parameters: dict[str, Any] | None = None) -> Schedule:
        """Create a schedule of the caller's scanner and watchlist and register its next run.

        Raises InvalidInputError: interval without ``interval_minutes`` (1..10080), daily
        without a valid ``run_time`` (HH:MM IST), unknown ``schedule_type``.
        """
        scanner = self.fluxscan.scanner_of(principal, scanner_id)
        watchlist = self.fluxscan.watchlist_of(principal, watchlist_id)
        kind, minutes, at = self._check(schedule_type, interval_minutes, run_time)
        now = self._now()
        values = {
            "scanner_id": scanner.id, "watchlist_id": watchlist.id, "schedule_type": kind,
            "interval_minutes": minutes, "run_time": at, "market_hours_only": market_hours_only,
            "is_active": is_active, "parameters": dict(parameters or {}), "created_at": now, "updated_at": now,
        }
        values["next_run_at"] = (next_run_after(kind, now, self.rules, interval_minutes=minutes, run_time=at,
                                                market_hours_only=market_hours_only) if is_active else None)
        schedule = self.store.add_schedule(principal.user_id, values)
        self._register(schedule)
        return schedule

    def update_schedule(self, principal: Principal, schedule_id: int, changes: dict[str, Any]) -> Schedule:
        """Change a schedule's timing, target or parameters; its next run is recomputed."""
        schedule = self._of(principal, schedule_id)
        values: dict[str, Any] = {}
        if changes.get("scanner_id") is not None:
            values["scanner_id"] = self.fluxscan.scanner_of(principal, changes["scanner_id"]).id
        if changes.get("watchlist_id") is not None:
            values["watchlist_id"] = self.fluxscan.watchlist_of(principal, changes["watchlist_id"]).id
        kind, minutes, at = self._check(
            changes.get("schedule_type") or schedule.schedule_type.value,
            changes.get("interval_minutes", schedule.interval_minutes),
            changes.get("run_time", schedule.run_time))
        values.update(schedule_type=kind, interval_minutes=minutes, run_time=at)
        for key in ("market_hours_only", "is_active", "parameters"):
            if changes.get(key) is not None:
                values[key] = changes[key]
        values["updated_at"] = self._now()
        schedule = self.store.update_schedule(schedule.id, values)
        return self._reschedule(schedule)

    def toggle_schedule(self, principal: Principal, schedule_id: int, is_active: bool | None = None) -> Schedule:
        """Set (or flip, when ``is_active`` is None) whether a schedule runs."""
        schedule = self._of(principal, schedule_id)
        active = (not schedule.is_active) if is_active is None else bool(is_active)
        schedule = self.store.update_schedule(schedule.id, {"is_active": active, "updated_at": self._now()})
        return self._reschedule(schedule)

    def delete_schedule(self, principal: Principal, schedule_id: int) -> None:
        """Delete a schedule and its pending run."""
        schedule = self._of(principal, schedule_id)
        self.scheduler.cancel(_key(schedule.id))
        self.store.delete_schedule(schedule.id)

    # ---- internals ---------------------------------------------------------------------
    @staticmethod
    def _check(schedule_type: str, interval_minutes: int | None,
               run_time: str | None) -> tuple[ScheduleType, int | None, str | None]:
        try:
            kind = ScheduleType(str(schedule_type).lower())
        except ValueError:
            raise InvalidInputError(f"schedule_type {schedule_type!r} is unknown; use interval or daily",
                                    field="schedule_type") from None
        if kind is ScheduleType.INTERVAL:
            if interval_minutes is None or not 1 <= int(interval_minutes) <= MAX_INTERVAL_MINUTES:
                raise InvalidInputError(f"interval_minutes {interval_minutes!r} must be from 1 to "
                                        f"{MAX_INTERVAL_MINUTES} for an interval schedule", field="interval_minutes")
            return kind, int(interval_minutes), None
        if not run_time:
            raise InvalidInputError("run_time (HH:MM, IST) is required for a daily schedule", field="run_time")
        return kind, None, parse_hhmm(run_time, "run_time").strftime("%H:%M")

    def _next(self, schedule: Schedule, after: datetime) -> datetime:
        return next_run_after(schedule.schedule_type, after, self.rules, interval_minutes=schedule.interval_minutes,
                              run_time=schedule.run_time, market_hours_only=schedule.market_hours_only)

    def _reschedule(self, schedule: Schedule) -> Schedule:
        next_at = self._next(schedule, self._now()) if schedule.is_active else None
        schedule = self.store.update_schedule(schedule.id, {"next_run_at": next_at})
        self._register(schedule)
        return schedule

    def _register(self, schedule: Schedule) -> None:
        if schedule.is_active and schedule.next_run_at is not None:
            sid = schedule.id
            self.scheduler.run_at(_key(sid), schedule.next_run_at, lambda: self.fire(sid))
        else:
            self.scheduler.cancel(_key(schedule.id))

    def fire(self, schedule_id: int) -> None:
        """Run a schedule now (the scheduler calls this) and register its next run."""
        schedule = self.store.get_schedule(schedule_id)
        if schedule is None or not schedule.is_active:
            return
        now = self._now()
        scanner = self.store.get_scanner(schedule.scanner_id)
        watchlist = self.store.get_watchlist(schedule.watchlist_id)
        try:
            if scanner is None or watchlist is None:
                raise NotFoundError("scanner or watchlist", schedule.id)
            self.scans.launch(schedule.owner_id, scanner, watchlist, dict(schedule.parameters),
                              schedule_id=schedule.id)
        except QuantdeskError as exc:
            log.warning("schedule %s could not start its scan: %s", schedule.id, exc.message)
        except Exception:  # the scheduler thread must survive one bad schedule
            log.exception("schedule %s failed", schedule.id)
        schedule = self.store.update_schedule(schedule.id, {"last_run_at": now,
                                                             "next_run_at": self._next(schedule, now)})
        self._register(schedule)


def _key(schedule_id: int) -> str:
    return f"fluxscan-schedule-{schedule_id}"
