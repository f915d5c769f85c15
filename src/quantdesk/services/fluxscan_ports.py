"""FluxScan's model and the ports its services need: a store, a job scheduler and a connection probe.

Rows are plain frozen dataclasses; the store (adapters/db/fluxscan.py) maps them to tables.
Every record belongs to one owner (a user id); the services enforce that a user sees only
their own (404 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class ScanStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_SCANS = frozenset({ScanStatus.COMPLETED, ScanStatus.FAILED, ScanStatus.CANCELLED})


class ScheduleType(StrEnum):
    INTERVAL = "interval"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class Scanner:
    """A user-written scanner: code plus default parameters."""

    id: int
    owner_id: int
    name: str
    description: str
    category: str
    code: str
    parameters: dict[str, Any]
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Watchlist:
    """Symbols of one exchange, in the reference's spelling (``RELIANCE``)."""

    id: int
    owner_id: int
    name: str
    description: str
    exchange: str
    symbols: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Scan:
    """One run of a scanner over a watchlist; ``progress`` is 0-100."""

    id: int
    owner_id: int
    scanner_id: int | None
    watchlist_id: int | None
    scanner_name: str
    watchlist_name: str
    status: ScanStatus
    total_symbols: int
    parameters: dict[str, Any]
    created_at: datetime
    progress: float = 0.0
    symbols_scanned: int = 0
    signals_found: int = 0
    error: str | None = None
    schedule_id: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One symbol's outcome in one scan; ``metrics`` are the scanner's, ``price`` the last close."""

    id: int
    scan_id: int
    owner_id: int
    scanner_id: int | None
    scanner_name: str
    symbol: str
    signal: str | None
    metrics: dict[str, float]
    price: float | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewResult:
    """A result row to insert (the store assigns ``id``)."""

    scan_id: int
    owner_id: int
    scanner_id: int | None
    scanner_name: str
    symbol: str
    signal: str | None
    metrics: dict[str, float]
    price: float | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a scanner runs over a watchlist by itself; times are aware UTC, ``run_time`` is IST text."""

    id: int
    owner_id: int
    scanner_id: int
    watchlist_id: int
    schedule_type: ScheduleType
    interval_minutes: int | None
    run_time: str | None
    market_hours_only: bool
    is_active: bool
    parameters: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    scanner_name: str = ""
    watchlist_name: str = ""


@dataclass(frozen=True, slots=True)
class ResultFilter:
    """Filters of the results list and export; dates are aware UTC bounds, half-open."""

    owner_id: int
    scanner_id: int | None = None
    scan_id: int | None = None
    symbol: str | None = None
    signal: str | None = None  # "BUY", "SELL", or "NONE" for rows without a signal
    start_at: datetime | None = None
    end_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OwnerStats:
    """Counts behind ``GET /api/stats``."""

    scanners_total: int
    scanners_active: int
    watchlists_total: int
    watchlist_symbols: int
    scans_total: int
    scans_by_status: dict[str, int]
    results_total: int
    results_today: int


class FluxScanStore(Protocol):
    """Persistence of scanners, watchlists, scans, results, schedules and per-user settings."""

    # scanners
    def add_scanner(self, owner_id: int, values: dict[str, Any]) -> Scanner: ...
    def get_scanner(self, scanner_id: int) -> Scanner | None: ...
    def list_scanners(self, owner_id: int) -> list[Scanner]: ...
    def update_scanner(self, scanner_id: int, values: dict[str, Any]) -> Scanner | None: ...
    def delete_scanner(self, scanner_id: int) -> bool: ...
    def scanner_usage(self, scanner_id: int) -> tuple[int, int]:
        """(scans run with it, its active schedules)."""
        ...

    # watchlists
    def add_watchlist(self, owner_id: int, values: dict[str, Any]) -> Watchlist: ...
    def get_watchlist(self, watchlist_id: int) -> Watchlist | None: ...
    def list_watchlists(self, owner_id: int) -> list[Watchlist]: ...
    def update_watchlist(self, watchlist_id: int, values: dict[str, Any]) -> Watchlist | None: ...
    def delete_watchlist(self, watchlist_id: int) -> bool: ...

    # scans and results
    def add_scan(self, values: dict[str, Any]) -> Scan: ...
    def get_scan(self, scan_id: int) -> Scan | None: ...
    def update_scan(self, scan_id: int, values: dict[str, Any]) -> None: ...
    def fail_unfinished_scans(self, reason: str, at: datetime) -> int:
        """Mark queued/running scans failed (after a restart); return how many."""
        ...

    def add_results(self, rows: Sequence[NewResult]) -> None:
        """Insert many results in one transaction."""
        ...

    def page_results(self, flt: ResultFilter, offset: int, limit: int) -> tuple[list[ScanResult], int]:
        """Results newest first and the total matching ``flt``."""
        ...

    def export_results(self, flt: ResultFilter, limit: int) -> list[ScanResult]: ...

    # schedules
    def add_schedule(self, owner_id: int, values: dict[str, Any]) -> Schedule: ...
    def get_schedule(self, schedule_id: int) -> Schedule | None: ...
    def list_schedules(self, owner_id: int | None = None, *, active_only: bool = False) -> list[Schedule]: ...
    def update_schedule(self, schedule_id: int, values: dict[str, Any]) -> Schedule | None: ...
    def delete_schedule(self, schedule_id: int) -> bool: ...

    # settings and stats
    def get_setting(self, key: str) -> dict[str, Any] | None: ...
    def put_setting(self, key: str, value: dict[str, Any], at: datetime) -> None: ...
    def owner_stats(self, owner_id: int, today_start: datetime) -> OwnerStats: ...


class JobScheduler(Protocol):
    """Runs a callback at an instant (APScheduler in production); one pending run per key."""

    def start(self) -> None: ...
    def shutdown(self) -> None: ...
    def run_at(self, key: str, when: datetime, fn: Callable[[], None]) -> None:
        """(Re)place the pending run of ``key`` at aware ``when``."""
        ...

    def cancel(self, key: str) -> None: ...


ConnectionProbe = Callable[[str, str], tuple[bool, str]]
"""``probe(base_url, api_key) -> (connected, message)``: one real request to a data provider."""


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Live progress of a running scan (kept in memory, published on the bus)."""

    scan_id: int
    owner_id: int
    total: int
    done: int = 0
    signals: int = 0
    symbol: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        return int(self.done * 100 / self.total) if self.total else 100
