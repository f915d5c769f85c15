"""``GET /api/health``: public, the union of every surface's documented fields."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["system"])


@router.get("/api/health")
def health(request: Request) -> dict:
    """Service status, version, engine state and resource health."""
    return request.app.state.health.report()
