"""FluxScan symbol and data endpoints: search, validate, history, cache clear, bar import."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe
from quantdesk.services.marketdata import MarketDataService
from quantdesk.surfaces.shared.auth import CurrentUser
from quantdesk.surfaces.shared.bars import bar_records

router = APIRouter(tags=["fluxscan"])


def market(request: Request) -> MarketDataService:
    return request.app.state.market


Market = Annotated[MarketDataService, Depends(market)]


class SymbolValidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=40)
    exchange: str = Field("NSE", min_length=1, max_length=16)


@router.get("/api/symbols/search")
def search_symbols(
    principal: CurrentUser,
    svc: Market,
    q: Annotated[str, Query(min_length=1, max_length=40)],
    exchange: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict]:
    """Symbols whose ticker or company name matches ``q``."""
    return [
        {"symbol": i.symbol, "name": i.name, "exchange": i.id.venue.value}
        for i in svc.search_symbols(q, exchange, limit=limit)
    ]


@router.post("/api/symbols/validate")
def validate_symbol(body: SymbolValidate, principal: CurrentUser, svc: Market) -> dict:
    """Whether a symbol exists on the exchange."""
    return {"valid": svc.validate_symbol(body.symbol, body.exchange)}


@router.get("/api/data/history")
def history(
    principal: CurrentUser,
    svc: Market,
    symbol: Annotated[str, Query(min_length=1, max_length=40)],
    exchange: str = "NSE",
    interval: str = "D",
    lookback: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> dict:
    """The last ``lookback`` closed bars of a symbol."""
    tf = Timeframe.parse(interval, field="interval")
    frame = svc.history_lookback(symbol, tf, lookback, exchange=exchange)
    inst = svc.resolve(symbol, exchange)
    return {
        "symbol": inst.symbol,
        "exchange": inst.id.venue.value,
        "interval": interval,
        "data": bar_records(frame, date_only=tf is Timeframe.D1),
    }


@router.post("/api/cache/clear")
def clear_cache(principal: CurrentUser, svc: Market) -> dict:
    """Empty the market-data cache (bars are fetched or simulated again on demand)."""
    svc.clear()
    return {"message": "Cache cleared successfully"}


@router.post("/api/data/import", status_code=201)
def import_bars(
    principal: CurrentUser,
    svc: Market,
    file: Annotated[UploadFile, File(description="CSV or Parquet with timestamp, open, high, low, close, volume")],
    symbol: Annotated[str, Form(min_length=1, max_length=40)],
    timeframe: Annotated[str, Form()] = "1d",
    exchange: Annotated[str | None, Form()] = None,
    name: Annotated[str | None, Form()] = None,
) -> dict:
    """Import a user's bar file; the reply reports accepted rows and each rejected row with its reason."""
    tf = Timeframe.parse(timeframe)
    filename = (file.filename or "").lower()
    if not filename.endswith((".csv", ".parquet", ".pq", ".txt")):
        raise InvalidInputError("file must be a .csv or .parquet file", field="file")
    data = file.file.read()
    source = io.BytesIO(data)
    source.name = filename  # lets the importer tell Parquet from CSV
    report = svc.import_bars(source, symbol, tf, exchange=exchange, name=name)
    return {"symbol": symbol.upper(), "timeframe": tf.value, **report.as_dict()}
