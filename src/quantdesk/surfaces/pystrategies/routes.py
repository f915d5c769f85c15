"""Python Strategies: upload, run, schedule, edit, logs, env vars, status, pages (3-python-strategies-api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from quantdesk.services.pystrategies import PyStrategyService, ist_stamp
from quantdesk.surfaces.pystrategies import schemas as s
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.pages import csrf_for, templates

router = APIRouter(prefix="/python", tags=["pystrategies"])


def _service(request: Request) -> PyStrategyService:
    return request.app.state.pystrategies


Strategies = Annotated[PyStrategyService, Depends(_service)]


def _ok(message: str, **extra) -> dict:
    return {"success": True, "message": message, **extra}


# ---- pages -----------------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, principal: CurrentUser, svc: Strategies) -> HTMLResponse:
    """Dashboard page listing your strategies."""
    status = svc.status(principal)
    return templates.TemplateResponse(request, "pystrategies_dashboard.html", {
        "username": principal.username, "csrf_token": csrf_for(principal),
        "strategies": [s.strategy_out(v) for v in status["strategies"]], "running": status["running"],
        "total": status["total"], "current_ist_time": status["current_ist_time"],
    })


@router.get("/edit/{strategy_id}", response_class=HTMLResponse)
def edit_page(strategy_id: str, request: Request, principal: CurrentUser, svc: Strategies) -> HTMLResponse:
    """Editor page with the strategy's code (read-only while it runs)."""
    strategy, code = svc.script_text(principal, strategy_id)
    return templates.TemplateResponse(request, "pystrategies_edit.html", {
        "username": principal.username, "csrf_token": csrf_for(principal),
        "strategy": s.strategy_out(svc.view(strategy)), "code": code, "read_only": strategy.is_running,
    })


@router.get("/logs/{strategy_id}", response_model=None)
def view_logs(strategy_id: str, request: Request, principal: CurrentUser, svc: Strategies,
              latest: Annotated[int | None, Query()] = None, file: Annotated[str | None, Query()] = None,
              lines: Annotated[int, Query(ge=1, le=100_000)] = 500,
              format: Annotated[str | None, Query(pattern="^(html|json)$")] = None) -> Response | dict:
    """Log viewer page (latest log, or ``file``); JSON with ``format=json`` or ``Accept: application/json``."""
    strategy, view = svc.logs(principal, strategy_id, name=None if latest else file, lines=lines)
    accept = request.headers.get("accept", "")
    if format == "json" or (format is None and "application/json" in accept and "text/html" not in accept):
        return {"success": True, "strategy_id": strategy.id, "name": strategy.name, "is_running": strategy.is_running,
                "file": view.current, "files": [s.log_file_out(f) for f in view.files], "content": view.text,
                "lines": view.text.splitlines()}
    return templates.TemplateResponse(request, "pystrategies_logs.html", {
        "username": principal.username, "csrf_token": csrf_for(principal),
        "strategy": s.strategy_out(svc.view(strategy)), "files": [s.log_file_out(f) for f in view.files],
        "current": view.current, "content": view.text,
    })


# ---- JSON --------------------------------------------------------------------------------

@router.post("/upload")
def upload(principal: CurrentUser, svc: Strategies, file: Annotated[UploadFile | None, File()] = None,
           name: Annotated[str | None, Form()] = None) -> dict:
    """Upload a strategy script (multipart: file, name)."""
    content = file.file.read(svc.config.max_script_bytes + 1) if file is not None else b""
    strategy = svc.upload(principal, name=name, file_name=file.filename if file is not None else None,
                          content=content)
    return _ok("Strategy uploaded successfully", strategy_id=strategy.id)


@router.post("/start/{strategy_id}")
def start(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Start a strategy process."""
    strategy, message = svc.start_strategy(principal, strategy_id)
    return _ok(message, strategy_id=strategy.id, pid=strategy.pid, started_at=s.iso_ist(strategy.started_at))


@router.post("/stop/{strategy_id}")
def stop(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Stop a running strategy (its whole process group)."""
    strategy, message = svc.stop_strategy(principal, strategy_id)
    return _ok(message, strategy_id=strategy.id, exit_code=strategy.exit_code)


@router.post("/delete/{strategy_id}")
def delete(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Delete a stopped strategy with its logs and schedule."""
    svc.delete(principal, strategy_id)
    return _ok("Strategy deleted successfully")


@router.post("/schedule/{strategy_id}")
def schedule(strategy_id: str, body: s.ScheduleIn, principal: CurrentUser, svc: Strategies) -> dict:
    """Set the strategy's IST schedule (start/stop time, weekdays)."""
    strategy = svc.schedule(principal, strategy_id, start_time=body.start_time, stop_time=body.stop_time,
                            days=body.days)
    view = s.strategy_out(svc.view(strategy))
    return _ok("Strategy scheduled successfully", next_start=view["next_start"], next_stop=view["next_stop"])


@router.post("/unschedule/{strategy_id}")
def unschedule(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Remove the strategy's schedule."""
    svc.unschedule(principal, strategy_id)
    return _ok("Schedule removed successfully")


@router.post("/save/{strategy_id}")
def save(strategy_id: str, body: s.SaveIn, principal: CurrentUser, svc: Strategies) -> dict:
    """Save edited strategy code (refused while running)."""
    saved_at = svc.save(principal, strategy_id, body.content)
    return _ok("Strategy saved successfully", timestamp=ist_stamp(saved_at))


@router.get("/export/{strategy_id}")
def export(strategy_id: str, principal: CurrentUser, svc: Strategies) -> Response:
    """Download the strategy's script."""
    file_name, content = svc.export(principal, strategy_id)
    return Response(content, media_type="text/x-python",
                    headers={"Content-Disposition": f'attachment; filename="{file_name}"'})


@router.post("/logs/{strategy_id}/clear")
def clear_logs(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Clear the strategy's log files (the running one's active log is truncated)."""
    count, size = svc.clear_logs(principal, strategy_id)
    size_mb = round(size / (1024 * 1024), 2)
    return _ok(f"Cleared {count} log file{'' if count == 1 else 's'} ({size_mb:.2f} MB)", cleared_count=count,
               total_size_mb=size_mb)


@router.get("/status")
def status(principal: CurrentUser, svc: Strategies) -> dict:
    """System status and your strategies."""
    data = svc.status(principal)
    return {**data, "strategies": [s.strategy_out(v) for v in data["strategies"]]}


@router.get("/env/{strategy_id}")
def get_env(strategy_id: str, principal: CurrentUser, svc: Strategies) -> dict:
    """Environment variables: regular ones with values, secure ones by name only."""
    regular, secure = svc.env(principal, strategy_id)
    return {"success": True, "regular_vars": regular, "secure_vars": secure}


@router.post("/env/{strategy_id}")
def set_env(strategy_id: str, body: s.EnvIn, principal: CurrentUser, svc: Strategies) -> dict:
    """Set environment variables (secure ones encrypted at rest; refused while running)."""
    regular, secure = svc.set_env(principal, strategy_id, body.regular_vars, body.secure_vars)
    return _ok("Environment variables saved successfully", regular_count=regular, secure_count=secure)
