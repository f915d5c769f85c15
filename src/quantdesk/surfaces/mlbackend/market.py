"""ML backend market data: ``/api/market/data`` and ``/api/market/symbols``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from quantdesk.core.instruments import InstrumentKind, Venue
from quantdesk.services.marketdata import MarketDataService
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.bars import bar_records

router = APIRouter(prefix="/api/market", tags=["mlbackend"])


def market(request: Request) -> MarketDataService:
    return request.app.state.market


Market = Annotated[MarketDataService, Depends(market)]


@router.get("/data")
def market_data(
    principal: CurrentUser,
    svc: Market,
    symbol: Annotated[str, Query(min_length=1, max_length=40)],
    timeframe: Annotated[str, Query(min_length=1, max_length=8)],
    start: str | None = None,
    end: str | None = None,
) -> list[dict]:
    """Historical OHLCV candles (UTC open times) for a symbol."""
    return bar_records(svc.history(symbol, timeframe, start, end))


@router.get("/symbols")
def market_symbols(
    principal: CurrentUser,
    svc: Market,
    asset_type: Literal["all", "crypto", "stocks", "forex", "indices"] = "all",
) -> dict:
    """Available symbols (crypto pairs spelled ``BTC_USDT``; stocks by their ticker)."""
    names: list[str] = []
    if asset_type in ("all", "crypto"):
        names += sorted({i.id.spell("underscore") for i in svc.list_symbols(Venue.CRYPTO)})
    if asset_type in ("all", "stocks"):
        names += sorted({i.symbol for i in svc.list_symbols(Venue.NSE, InstrumentKind.EQUITY)})
    if asset_type in ("all", "indices"):
        names += sorted({i.symbol for i in svc.list_symbols(kind=InstrumentKind.INDEX)})
    return {"symbols": names, "asset_type": asset_type}
