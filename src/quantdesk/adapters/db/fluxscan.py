"""SQLAlchemy implementation of the FluxScanStore port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from quantdesk.adapters.db.fluxscan_tables import (
    fluxscan_results as results_t,
)
from quantdesk.adapters.db.fluxscan_tables import (
    fluxscan_scanners as scanners_t,
)
from quantdesk.adapters.db.fluxscan_tables import (
    fluxscan_scans as scans_t,
)
from quantdesk.adapters.db.fluxscan_tables import (
    fluxscan_schedules as schedules_t,
)
from quantdesk.adapters.db.fluxscan_tables import (
    fluxscan_watchlists as watchlists_t,
)
from quantdesk.adapters.db.tables import app_settings
from quantdesk.services.fluxscan_ports import (
    NewResult,
    OwnerStats,
    ResultFilter,
    Scan,
    Scanner,
    ScanResult,
    ScanStatus,
    Schedule,
    ScheduleType,
    Watchlist,
)


def _scanner(r) -> Scanner:
    return Scanner(r.id, r.owner_id, r.name, r.description or "", r.category, r.code, dict(r.parameters or {}),
                   bool(r.is_active), r.created_at, r.updated_at)


def _watchlist(r) -> Watchlist:
    return Watchlist(r.id, r.owner_id, r.name, r.description or "", r.exchange, tuple(r.symbols or ()),
                     r.created_at, r.updated_at)


def _scan(r) -> Scan:
    return Scan(
        id=r.id, owner_id=r.owner_id, scanner_id=r.scanner_id, watchlist_id=r.watchlist_id,
        scanner_name=r.scanner_name, watchlist_name=r.watchlist_name, status=ScanStatus(r.status),
        total_symbols=r.total_symbols, parameters=dict(r.parameters or {}), created_at=r.created_at,
        progress=r.progress, symbols_scanned=r.symbols_scanned, signals_found=r.signals_found, error=r.error,
        schedule_id=r.schedule_id, started_at=r.started_at, completed_at=r.completed_at,
    )


def _result(r) -> ScanResult:
    return ScanResult(r.id, r.scan_id, r.owner_id, r.scanner_id, r.scanner_name, r.symbol, r.signal,
                      dict(r.metrics or {}), r.price, r.error, r.created_at)


def _schedule(r) -> Schedule:
    m = r._mapping
    return Schedule(
        id=r.id, owner_id=r.owner_id, scanner_id=r.scanner_id, watchlist_id=r.watchlist_id,
        schedule_type=ScheduleType(r.schedule_type), interval_minutes=r.interval_minutes, run_time=r.run_time,
        market_hours_only=bool(r.market_hours_only), is_active=bool(r.is_active),
        parameters=dict(r.parameters or {}), created_at=r.created_at, updated_at=r.updated_at,
        last_run_at=r.last_run_at, next_run_at=r.next_run_at,
        scanner_name=m.get("scanner_name") or "", watchlist_name=m.get("watchlist_name") or "",
    )


_SCHEDULE_QUERY = (
    select(schedules_t, scanners_t.c.name.label("scanner_name"), watchlists_t.c.name.label("watchlist_name"))
    .join(scanners_t, scanners_t.c.id == schedules_t.c.scanner_id)
    .join(watchlists_t, watchlists_t.c.id == schedules_t.c.watchlist_id)
)


class SqlFluxScanStore:
    """FluxScan persistence on SQLite or PostgreSQL (Core queries, one transaction per call)."""

    def __init__(self, engine: Engine):
        self._engine = engine

    # ---- generic helpers ---------------------------------------------------------------
    def _insert(self, table, values: dict[str, Any]) -> int:
        with self._engine.begin() as conn:
            return conn.execute(insert(table).values(**values)).inserted_primary_key[0]

    def _one(self, query):
        with self._engine.connect() as conn:
            return conn.execute(query).first()

    def _all(self, query) -> list:
        with self._engine.connect() as conn:
            return list(conn.execute(query))

    def _update(self, table, row_id: int, values: dict[str, Any]) -> bool:
        with self._engine.begin() as conn:
            return conn.execute(update(table).where(table.c.id == row_id).values(**values)).rowcount > 0

    def _delete(self, table, row_id: int) -> bool:
        with self._engine.begin() as conn:
            return conn.execute(delete(table).where(table.c.id == row_id)).rowcount > 0

    # ---- scanners ----------------------------------------------------------------------
    def add_scanner(self, owner_id: int, values: dict[str, Any]) -> Scanner:
        return self.get_scanner(self._insert(scanners_t, {"owner_id": owner_id, **values}))

    def get_scanner(self, scanner_id: int) -> Scanner | None:
        row = self._one(select(scanners_t).where(scanners_t.c.id == scanner_id))
        return _scanner(row) if row else None

    def list_scanners(self, owner_id: int) -> list[Scanner]:
        return [_scanner(r) for r in self._all(
            select(scanners_t).where(scanners_t.c.owner_id == owner_id).order_by(scanners_t.c.id))]

    def update_scanner(self, scanner_id: int, values: dict[str, Any]) -> Scanner | None:
        self._update(scanners_t, scanner_id, values)
        return self.get_scanner(scanner_id)

    def delete_scanner(self, scanner_id: int) -> bool:
        return self._delete(scanners_t, scanner_id)

    def scanner_usage(self, scanner_id: int) -> tuple[int, int]:
        with self._engine.connect() as conn:
            scans = conn.execute(select(func.count()).select_from(scans_t)
                                 .where(scans_t.c.scanner_id == scanner_id)).scalar_one()
            active = conn.execute(select(func.count()).select_from(schedules_t).where(
                and_(schedules_t.c.scanner_id == scanner_id, schedules_t.c.is_active.is_(True)))).scalar_one()
        return int(scans), int(active)

    # ---- watchlists --------------------------------------------------------------------
    def add_watchlist(self, owner_id: int, values: dict[str, Any]) -> Watchlist:
        return self.get_watchlist(self._insert(watchlists_t, {"owner_id": owner_id, **values}))

    def get_watchlist(self, watchlist_id: int) -> Watchlist | None:
        row = self._one(select(watchlists_t).where(watchlists_t.c.id == watchlist_id))
        return _watchlist(row) if row else None

    def list_watchlists(self, owner_id: int) -> list[Watchlist]:
        return [_watchlist(r) for r in self._all(
            select(watchlists_t).where(watchlists_t.c.owner_id == owner_id).order_by(watchlists_t.c.id))]

    def update_watchlist(self, watchlist_id: int, values: dict[str, Any]) -> Watchlist | None:
        self._update(watchlists_t, watchlist_id, values)
        return self.get_watchlist(watchlist_id)

    def delete_watchlist(self, watchlist_id: int) -> bool:
        return self._delete(watchlists_t, watchlist_id)

    # ---- scans and results -------------------------------------------------------------
    def add_scan(self, values: dict[str, Any]) -> Scan:
        values = dict(values)
        values["status"] = ScanStatus(values["status"]).value
        return self.get_scan(self._insert(scans_t, values))

    def get_scan(self, scan_id: int) -> Scan | None:
        row = self._one(select(scans_t).where(scans_t.c.id == scan_id))
        return _scan(row) if row else None

    def update_scan(self, scan_id: int, values: dict[str, Any]) -> None:
        values = dict(values)
        if "status" in values:
            values["status"] = ScanStatus(values["status"]).value
        self._update(scans_t, scan_id, values)

    def fail_unfinished_scans(self, reason: str, at: datetime) -> int:
        with self._engine.begin() as conn:
            return conn.execute(
                update(scans_t)
                .where(scans_t.c.status.in_([ScanStatus.QUEUED.value, ScanStatus.RUNNING.value]))
                .values(status=ScanStatus.FAILED.value, error=reason, completed_at=at)
            ).rowcount

    def add_results(self, rows: Sequence[NewResult]) -> None:
        if not rows:
            return
        payload = [
            {"scan_id": r.scan_id, "owner_id": r.owner_id, "scanner_id": r.scanner_id,
             "scanner_name": r.scanner_name, "symbol": r.symbol, "signal": r.signal, "metrics": r.metrics,
             "price": r.price, "error": r.error, "created_at": r.created_at}
            for r in rows
        ]
        with self._engine.begin() as conn:
            conn.execute(insert(results_t), payload)  # one executemany

    @staticmethod
    def _where(flt: ResultFilter) -> list:
        clauses = [results_t.c.owner_id == flt.owner_id]
        if flt.scanner_id is not None:
            clauses.append(results_t.c.scanner_id == flt.scanner_id)
        if flt.scan_id is not None:
            clauses.append(results_t.c.scan_id == flt.scan_id)
        if flt.symbol:
            clauses.append(results_t.c.symbol == flt.symbol)
        if flt.signal == "NONE":
            clauses.append(results_t.c.signal.is_(None))
        elif flt.signal:
            clauses.append(results_t.c.signal == flt.signal)
        if flt.start_at is not None:
            clauses.append(results_t.c.created_at >= flt.start_at)
        if flt.end_at is not None:
            clauses.append(results_t.c.created_at < flt.end_at)
        return clauses

    def page_results(self, flt: ResultFilter, offset: int, limit: int) -> tuple[list[ScanResult], int]:
        where = and_(*self._where(flt))
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(results_t).where(where)).scalar_one()
            rows = conn.execute(select(results_t).where(where).order_by(results_t.c.id.desc())
                                .offset(offset).limit(limit))
            return [_result(r) for r in rows], int(total)

    def export_results(self, flt: ResultFilter, limit: int) -> list[ScanResult]:
        query = select(results_t).where(and_(*self._where(flt))).order_by(results_t.c.id).limit(limit)
        return [_result(r) for r in self._all(query)]

    # ---- schedules ---------------------------------------------------------------------
    def add_schedule(self, owner_id: int, values: dict[str, Any]) -> Schedule:
        values = {**values, "schedule_type": ScheduleType(values["schedule_type"]).value}
        return self.get_schedule(self._insert(schedules_t, {"owner_id": owner_id, **values}))

    def get_schedule(self, schedule_id: int) -> Schedule | None:
        row = self._one(_SCHEDULE_QUERY.where(schedules_t.c.id == schedule_id))
        return _schedule(row) if row else None

    def list_schedules(self, owner_id: int | None = None, *, active_only: bool = False) -> list[Schedule]:
        query = _SCHEDULE_QUERY.order_by(schedules_t.c.id)
        if owner_id is not None:
            query = query.where(schedules_t.c.owner_id == owner_id)
        if active_only:
            query = query.where(schedules_t.c.is_active.is_(True))
        return [_schedule(r) for r in self._all(query)]

    def update_schedule(self, schedule_id: int, values: dict[str, Any]) -> Schedule | None:
        if "schedule_type" in values:
            values = {**values, "schedule_type": ScheduleType(values["schedule_type"]).value}
        self._update(schedules_t, schedule_id, values)
        return self.get_schedule(schedule_id)

    def delete_schedule(self, schedule_id: int) -> bool:
        return self._delete(schedules_t, schedule_id)

    # ---- settings and stats ------------------------------------------------------------
    def get_setting(self, key: str) -> dict[str, Any] | None:
        row = self._one(select(app_settings.c.value).where(app_settings.c.key == key))
        return dict(row.value) if row else None

    def put_setting(self, key: str, value: dict[str, Any], at: datetime) -> None:
        with self._engine.begin() as conn:
            changed = conn.execute(update(app_settings).where(app_settings.c.key == key)
                                   .values(value=value, updated_at=at)).rowcount
            if not changed:
                conn.execute(insert(app_settings).values(key=key, value=value, updated_at=at))

    def owner_stats(self, owner_id: int, today_start: datetime) -> OwnerStats:
        with self._engine.connect() as conn:
            by_active = dict(conn.execute(select(scanners_t.c.is_active, func.count()).where(
                scanners_t.c.owner_id == owner_id).group_by(scanners_t.c.is_active)).all())
            watch = conn.execute(select(watchlists_t.c.symbols).where(watchlists_t.c.owner_id == owner_id)).all()
            by_status = dict(conn.execute(select(scans_t.c.status, func.count()).where(
                scans_t.c.owner_id == owner_id).group_by(scans_t.c.status)).all())
            results_total = conn.execute(select(func.count()).select_from(results_t)
                                         .where(results_t.c.owner_id == owner_id)).scalar_one()
            results_today = conn.execute(select(func.count()).select_from(results_t).where(and_(
                results_t.c.owner_id == owner_id, results_t.c.created_at >= today_start))).scalar_one()
        return OwnerStats(
            scanners_total=sum(by_active.values()), scanners_active=int(by_active.get(True, 0)),
            watchlists_total=len(watch), watchlist_symbols=sum(len(w.symbols or ()) for w in watch),
            scans_total=sum(by_status.values()), scans_by_status={k: int(v) for k, v in by_status.items()},
            results_total=int(results_total), results_today=int(results_today),
        )
