"""ML backend "Portfolio": the caller's paper account (the same ledger every trading surface uses)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from quantdesk.services.ml_portfolio import PortfolioService
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.responses import JsonResponse

router = APIRouter(prefix="/portfolio", tags=["mlbackend"])


def portfolio_of(request: Request) -> PortfolioService:
    return request.app.state.ml_portfolio


Portfolios = Annotated[PortfolioService, Depends(portfolio_of)]


def _n(x) -> float:
    return float(round(x, 8))


@router.get("")
@router.get("/", include_in_schema=False)
async def portfolio(principal: CurrentUser, svc: Portfolios) -> JsonResponse:
    """Equity, cash, open positions with P&L, today's and total P&L of the caller's paper account."""
    p = await svc.portfolio(principal.user_id)
    return JsonResponse({
        "total_value": _n(p.total_value), "cash": _n(p.cash),
        "positions": [{"symbol": x.symbol, "side": x.side, "quantity": _n(x.quantity), "entry_price": _n(x.entry_price),
                       "current_price": _n(x.current_price), "pnl": _n(x.pnl), "pnl_pct": _n(round(x.pnl_pct, 4)),
                       "opened_at": x.opened_at} for x in p.positions],
        "daily_pnl": _n(p.daily_pnl), "daily_pnl_pct": _n(round(p.daily_pnl_pct, 4)),
        "total_pnl": _n(p.total_pnl), "total_pnl_pct": _n(round(p.total_pnl_pct, 4)), "currency": p.currency,
    })


@router.get("/history")
async def portfolio_history(principal: CurrentUser, svc: Portfolios,
                            days: int = Query(30, ge=1, le=3650)) -> JsonResponse:
    """The account's value at the end of each UTC day (today: now), oldest first."""
    return JsonResponse([{"date": day, "value": _n(value)} for day, value in await svc.history(principal.user_id, days)])
