"""Crypto Scalper REST API under ``/api/v1`` (2-crypto-scalper-api.md): parse, call the trading service, shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request

from quantdesk.core.portfolio import PositionSide
from quantdesk.services.pnl import Period
from quantdesk.services.trading import TradingService
from quantdesk.surfaces.scalper import schemas as s
from quantdesk.surfaces.shared.auth import CurrentUser

router = APIRouter(prefix="/api/v1", tags=["scalper"])


def _trading(request: Request) -> TradingService:
    return request.app.state.trading


Trading = Annotated[TradingService, Depends(_trading)]
Reply = dict[str, Any]


@router.get("/account")
async def get_account(user: CurrentUser, trading: Trading) -> Reply:
    """Account information."""
    return s.account_out(await trading.account(user.user_id))


@router.get("/balance")
async def get_balance(user: CurrentUser, trading: Trading, asset: str | None = None) -> Reply:
    """Balances, equity and margin."""
    return s.balance_out(await trading.balance(user.user_id, asset))


@router.get("/positions")
async def get_positions(user: CurrentUser, trading: Trading, symbol: str | None = None,
                        side: Literal["long", "short"] | None = None) -> Reply:
    """Open positions at current prices."""
    return s.positions_out(await trading.positions(user.user_id, symbol, PositionSide(side) if side else None))


@router.get("/trades")
async def get_trades(user: CurrentUser, trading: Trading, symbol: str | None = None,
                     start_time: str | None = None, end_time: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0)] = 0) -> Reply:
    """Closed trades, newest first."""
    page = await trading.trades(user.user_id, symbol=symbol, start=s.parse_time(start_time, "start_time"),
                                end=s.parse_time(end_time, "end_time"), limit=limit, offset=offset)
    return s.trades_out(page)


@router.post("/orders")
async def place_order(user: CurrentUser, trading: Trading, body: s.OrderCreate) -> Reply:
    """Place an order (paper market orders fill at once)."""
    return s.order_out(await trading.place_order(user.user_id, **body.command_args()))


@router.delete("/orders/{order_id}")
async def cancel_order(user: CurrentUser, trading: Trading, order_id: str) -> Reply:
    """Cancel an open order."""
    return s.cancel_out(await trading.cancel_order(user.user_id, order_id))


@router.post("/positions/close-all")
async def close_all_positions(user: CurrentUser, trading: Trading) -> Reply:
    """Close every open position at market."""
    return s.close_all_out(await trading.close_all(user.user_id))


@router.post("/positions/{symbol}/close")
async def close_position(user: CurrentUser, trading: Trading, symbol: str,
                         body: Annotated[s.ClosePositionIn | None, Body()] = None) -> Reply:
    """Close a position, all of it or a quantity."""
    quantity = body.quantity if body is not None else None
    return s.close_out(await trading.close_position(user.user_id, symbol, quantity))


@router.put("/leverage/{symbol}")
async def set_leverage(user: CurrentUser, trading: Trading, symbol: str, body: s.LeverageIn) -> Reply:
    """Set the leverage of new positions in a symbol."""
    view = await trading.set_leverage(user.user_id, symbol, body.leverage)
    return {"symbol": view.symbol, "leverage": view.leverage, "max_leverage": view.max_leverage}


@router.get("/bot/status")
async def bot_status(user: CurrentUser, trading: Trading) -> Reply:
    """Bot state, strategies and today's performance."""
    return s.bot_status_out(await trading.bot_status(user.user_id))


@router.post("/bot/start")
async def start_bot(user: CurrentUser, trading: Trading,
                    body: Annotated[s.BotStartIn | None, Body()] = None) -> Reply:
    """Start the bot (paper trading by default)."""
    body = body or s.BotStartIn()
    state = await trading.start_bot(user.user_id, paper=body.paper_trading, strategies=body.strategies)
    return {"status": "started", "message": "Trading bot started successfully", "paper_trading": state.paper,
            "active_strategies": state.active}


@router.post("/bot/stop")
async def stop_bot(user: CurrentUser, trading: Trading,
                   body: Annotated[s.BotStopIn | None, Body()] = None) -> Reply:
    """Stop the bot, optionally closing every position."""
    body = body or s.BotStopIn()
    stopped = await trading.stop_bot(user.user_id, close_positions=body.close_positions)
    return {"status": "stopped", "message": "Trading bot stopped", "open_positions": stopped.open_positions,
            "closed_positions": len(stopped.closed)}


@router.get("/pnl")
async def get_pnl(user: CurrentUser, trading: Trading,
                  period: Literal["daily", "weekly", "monthly", "all"] = "daily") -> Reply:
    """P&L summary of a period (UTC)."""
    return s.pnl_out(await trading.pnl(user.user_id, Period(period)))


@router.get("/strategies")
async def list_strategies(user: CurrentUser, trading: Trading) -> Reply:
    """Strategies with the caller's settings and performance."""
    return {"strategies": [s.strategy_out(v) for v in await trading.strategies(user.user_id)]}


@router.put("/strategies/{strategy_name}")
async def update_strategy(user: CurrentUser, trading: Trading, strategy_name: str, body: s.StrategyUpdate) -> Reply:
    """Enable or disable a strategy, or change its parameters."""
    view = await trading.update_strategy(user.user_id, strategy_name, enabled=body.enabled,
                                         parameters=body.parameters)
    return s.strategy_updated_out(view)


@router.post("/backtest")
async def run_backtest(user: CurrentUser, trading: Trading, body: s.BacktestCreate) -> Reply:
    """Start a backtest job."""
    start, end = body.range()
    view = await trading.submit_backtest(user, strategy=body.strategy, symbol=body.symbol, start=start, end=end,
                                         initial_balance=body.initial_balance, leverage=body.leverage,
                                         commission=body.commission_rate, parameters=body.parameters,
                                         timeframe=body.timeframe)
    return s.backtest_created_out(view)


@router.get("/backtest/{backtest_id}")
async def get_backtest(user: CurrentUser, trading: Trading, backtest_id: str) -> Reply:
    """A backtest's status, progress and result."""
    return s.backtest_out(await trading.backtest(user, backtest_id))
