"""FluxScan scanners, watchlists, scans, results, schedules, settings and stats (1-fluxscan-scanner-api.md)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from quantdesk.core.errors import InvalidInputError
from quantdesk.services.fluxscan import FluxScanService
from quantdesk.services.fluxscan_ports import ResultFilter
from quantdesk.services.fluxscan_scans import ScanService, day_bounds
from quantdesk.services.fluxscan_schedules import ScheduleService
from quantdesk.surfaces.fluxscan import schemas as s
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse

router = APIRouter(tags=["fluxscan"])


def _fluxscan(request: Request) -> FluxScanService:
    return request.app.state.fluxscan


def _scans(request: Request) -> ScanService:
    return request.app.state.fluxscan_scans


def _schedules(request: Request) -> ScheduleService:
    return request.app.state.fluxscan_schedules


FluxScan = Annotated[FluxScanService, Depends(_fluxscan)]
Scans = Annotated[ScanService, Depends(_scans)]
Schedules = Annotated[ScheduleService, Depends(_schedules)]


def _scan_id(value: str) -> int:
    text = value.strip().lower().removeprefix("scan_")
    if not text.isdigit():
        raise InvalidInputError(f"scan_id {value!r} is not a scan id (e.g. 12 or scan_12)", field="scan_id")
    return int(text)


# ---- scanners ---------------------------------------------------------------------------

@router.get("/api/scanners")
def list_scanners(principal: CurrentUser, svc: FluxScan) -> list[dict]:
    """List your scanners."""
    return [s.scanner_out(x) for x in svc.list_scanners(principal)]


@router.post("/api/scanners", status_code=201)
def create_scanner(body: s.ScannerCreate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Create a scanner (its code is validated)."""
    scanner = svc.create_scanner(principal, **body.model_dump())
    return {**s.scanner_out(scanner), "status": "created"}


@router.post("/api/scanners/validate")
def validate_scanner(body: s.CodeValidate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Validate scanner code without saving it."""
    report = svc.validate_code(body.code)
    return {"is_valid": report.valid, "valid": report.valid, "errors": report.errors, "warnings": report.warnings}


@router.get("/api/scanners/{scanner_id}")
def get_scanner(scanner_id: int, principal: CurrentUser, svc: FluxScan) -> dict:
    """Scanner details with its code, scan count and active schedules."""
    return s.scanner_details_out(svc.scanner_details(principal, scanner_id))


@router.put("/api/scanners/{scanner_id}")
def update_scanner(scanner_id: int, body: s.ScannerUpdate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Update a scanner (new code is validated)."""
    scanner = svc.update_scanner(principal, scanner_id, body.model_dump(exclude_unset=True))
    return {**s.scanner_out(scanner), "status": "updated", "message": "Scanner updated successfully"}


@router.delete("/api/scanners/{scanner_id}")
def delete_scanner(scanner_id: int, principal: CurrentUser, svc: FluxScan) -> dict:
    """Delete a scanner and its schedules."""
    svc.delete_scanner(principal, scanner_id)
    return {"message": "Scanner deleted successfully"}


@router.post("/api/scanners/{scanner_id}/test")
def test_scanner(scanner_id: int, principal: CurrentUser, scans: Scans,
                 body: s.ScannerTest | None = None) -> dict:
    """Run a scanner on a few symbols now."""
    body = body or s.ScannerTest()
    outcome = scans.test_scanner(principal, scanner_id, body.symbols, body.parameters)
    results = [{"symbol": r.symbol, "signal": r.signal, "metrics": r.metrics, "price": price, "error": r.error}
               for r, price in outcome.results]
    return {"status": "completed", "results": results, "execution_time": round(outcome.execution_time, 3)}


# ---- watchlists -------------------------------------------------------------------------

@router.get("/api/watchlists")
def list_watchlists(principal: CurrentUser, svc: FluxScan) -> list[dict]:
    """List your watchlists."""
    return [s.watchlist_out(w) for w in svc.list_watchlists(principal)]


@router.post("/api/watchlists", status_code=201)
def create_watchlist(body: s.WatchlistCreate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Create a watchlist (unknown symbols are refused by name)."""
    return {**s.watchlist_out(svc.create_watchlist(principal, **body.model_dump())), "status": "created"}


@router.post("/api/watchlists/import", status_code=201)
def import_watchlist(body: s.WatchlistImport, principal: CurrentUser, svc: FluxScan) -> dict:
    """Create a watchlist from CSV text (one symbol per line, or a symbol column)."""
    return {**s.watchlist_out(svc.import_watchlist(principal, **body.model_dump())), "status": "created"}


@router.get("/api/watchlists/{watchlist_id}")
def get_watchlist(watchlist_id: int, principal: CurrentUser, svc: FluxScan) -> dict:
    """One watchlist."""
    return s.watchlist_out(svc.watchlist_of(principal, watchlist_id))


@router.put("/api/watchlists/{watchlist_id}")
def update_watchlist(watchlist_id: int, body: s.WatchlistUpdate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Update a watchlist."""
    watchlist = svc.update_watchlist(principal, watchlist_id, body.model_dump(exclude_unset=True))
    return {**s.watchlist_out(watchlist), "status": "updated", "message": "Watchlist updated successfully"}


@router.delete("/api/watchlists/{watchlist_id}")
def delete_watchlist(watchlist_id: int, principal: CurrentUser, svc: FluxScan) -> dict:
    """Delete a watchlist and its schedules."""
    svc.delete_watchlist(principal, watchlist_id)
    return {"message": "Watchlist deleted successfully"}


# ---- scans ------------------------------------------------------------------------------

@router.post("/scan/api/scan", status_code=201)
def run_scan(body: s.ScanStart, principal: CurrentUser, scans: Scans) -> dict:
    """Start a scan; follow it by status polling or Socket.IO ``subscribe_scan``."""
    scan = scans.start_scan(principal, body.scanner_id, body.watchlist_id, body.parameters)
    return {"scan_id": scan.id, "id": scan.id, "status": scan.status.value, "total_symbols": scan.total_symbols}


@router.get("/scan/api/scan/status/{scan_id}")
def scan_status(scan_id: str, principal: CurrentUser, scans: Scans) -> dict:
    """Progress of a scan."""
    return s.scan_out(scans.scan_status(principal, _scan_id(scan_id)))


@router.post("/scan/api/scan/cancel/{scan_id}")
def cancel_scan(scan_id: str, principal: CurrentUser, scans: Scans) -> dict:
    """Cancel a running scan."""
    scan = scans.cancel_scan(principal, _scan_id(scan_id))
    return {"message": "Scan cancelled successfully", "scan_id": scan.id, "status": scan.status.value}


# ---- results ----------------------------------------------------------------------------

@router.get("/api/results")
def list_results(
    principal: CurrentUser,
    scans: Scans,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    scanner_id: Annotated[int | None, Query(ge=1)] = None,
    scan_id: Annotated[int | None, Query(ge=1)] = None,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    signal: Literal["BUY", "SELL", "NONE", "buy", "sell", "none"] | None = None,
) -> dict:
    """Results, newest first, with pagination and filters."""
    flt = ResultFilter(owner_id=principal.user_id, scanner_id=scanner_id, scan_id=scan_id,
                       symbol=symbol.strip().upper() if symbol else None, signal=signal.upper() if signal else None)
    result_page = scans.list_results(principal, flt, page, per_page)
    return {"results": [s.result_out(r) for r in result_page.items], "total": result_page.total,
            "page": result_page.page, "per_page": result_page.per_page, "total_pages": result_page.total_pages,
            "has_next": result_page.has_next, "has_prev": result_page.has_prev}


@router.post("/api/results/export", response_model=None)
def export_results(body: s.ResultsExport, principal: CurrentUser, scans: Scans) -> Response:
    """Export results as CSV or JSON, optionally by scanner, scan, symbol, signal and IST date range."""
    start_at, end_at = day_bounds(body.start_date, body.end_date)
    flt = ResultFilter(owner_id=principal.user_id, scanner_id=body.scanner_id, scan_id=body.scan_id,
                       symbol=body.symbol.upper() if body.symbol else None, signal=body.signal,
                       start_at=start_at, end_at=end_at)
    rows = [s.result_out(r) for r in scans.export_results(principal, flt)]
    if body.format == "json":
        return JsonResponse(rows)
    return Response(_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="fluxscan_results.csv"'})


def _csv(rows: list[dict[str, Any]]) -> str:
    fixed = ["id", "scan_id", "timestamp", "scanner_id", "scanner_name", "symbol", "signal", "price", "error"]
    metric_keys = sorted({k for r in rows for k in r["metrics"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fixed + metric_keys)
    for r in rows:
        writer.writerow([r[k] if r[k] is not None else "" for k in fixed]
                        + [r["metrics"].get(k, "") for k in metric_keys])
    return out.getvalue()


# ---- schedules --------------------------------------------------------------------------

@router.get("/api/schedules")
def list_schedules(principal: CurrentUser, svc: Schedules) -> list[dict]:
    """List your schedules with their next run (aware UTC)."""
    return [s.schedule_out(x) for x in svc.list_schedules(principal)]


@router.post("/api/schedules", status_code=201)
def create_schedule(body: s.ScheduleCreate, principal: CurrentUser, svc: Schedules) -> dict:
    """Create an interval or daily (IST) schedule."""
    return {**s.schedule_out(svc.create_schedule(principal, **body.model_dump())), "status": "created"}


@router.get("/api/schedules/{schedule_id}")
def get_schedule(schedule_id: int, principal: CurrentUser, svc: Schedules) -> dict:
    """One schedule."""
    return s.schedule_out(svc.get_schedule(principal, schedule_id))


@router.put("/api/schedules/{schedule_id}")
def update_schedule(schedule_id: int, body: s.ScheduleUpdate, principal: CurrentUser, svc: Schedules) -> dict:
    """Update a schedule; its next run is recomputed."""
    return s.schedule_out(svc.update_schedule(principal, schedule_id, body.model_dump(exclude_unset=True)))


@router.post("/api/schedules/{schedule_id}/toggle")
def toggle_schedule(schedule_id: int, principal: CurrentUser, svc: Schedules,
                    body: s.ScheduleToggle | None = None) -> dict:
    """Activate or pause a schedule (flips it when ``is_active`` is omitted)."""
    schedule = svc.toggle_schedule(principal, schedule_id, body.is_active if body else None)
    return {**s.schedule_out(schedule), "message": "Schedule " + ("activated" if schedule.is_active else "paused")}


@router.delete("/api/schedules/{schedule_id}")
def delete_schedule(schedule_id: int, principal: CurrentUser, svc: Schedules) -> dict:
    """Delete a schedule."""
    svc.delete_schedule(principal, schedule_id)
    return {"message": "Schedule deleted successfully"}


# ---- settings and stats -----------------------------------------------------------------

@router.get("/api/settings")
def get_settings(principal: CurrentUser, svc: FluxScan) -> dict:
    """Your FluxScan settings."""
    return svc.get_settings(principal)


@router.put("/api/settings")
def update_settings(body: s.SettingsUpdate, principal: CurrentUser, svc: FluxScan) -> dict:
    """Change settings (times HH:MM, an IANA timezone, NSE or BSE)."""
    return svc.update_settings(principal, body.model_dump(exclude_unset=True))


@router.get("/api/settings/openalgo/test")
def test_openalgo(principal: CurrentUser, svc: FluxScan) -> dict:
    """Test the connection to the configured OpenAlgo server."""
    connected, message = svc.test_openalgo(principal)
    return {"connected": connected, "message": message}


@router.get("/api/stats")
def stats(principal: CurrentUser, svc: FluxScan) -> dict:
    """Counts of your scanners, watchlists, scans and results."""
    st = svc.stats(principal)
    by = st.scans_by_status
    return {
        "scanners": {"total": st.scanners_total, "active": st.scanners_active},
        "watchlists": {"total": st.watchlists_total, "symbols": st.watchlist_symbols},
        "scans": {"total": st.scans_total, "running": by.get("running", 0) + by.get("queued", 0),
                  "completed": by.get("completed", 0), "failed": by.get("failed", 0),
                  "cancelled": by.get("cancelled", 0)},
        "results": {"total": st.results_total, "today": st.results_today},
    }
