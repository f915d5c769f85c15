"""Crypto Scalper request bodies and reply shapes (2-crypto-scalper-api.md), field for field.

Requests are parsed strictly (unknown fields and enum values are 400 VALIDATION_ERROR); the
``*_out`` functions shape service views into the reference's replies. Amounts are JSON numbers
(quantized to 1e-10), percentages in percent, times ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.orders import Order, OrderSide, OrderType, TimeInForce
from quantdesk.services.marketdata import parse_when
from quantdesk.services.pnl import TradeStats
from quantdesk.services.push import number
from quantdesk.services.trading import (
    BacktestView,
    BalanceView,
    BotStatusView,
    CloseResult,
    PaperAccount,
    PnlReport,
    PositionsView,
    TradePage,
)
from quantdesk.services.trading_strategies import StrategyView
from quantdesk.surfaces.shared.responses import iso_utc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class OrderCreate(Strict):
    symbol: str = Field(min_length=1, max_length=40)
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop_market", "stop_limit"]
    quantity: Decimal = Field(gt=0)
    price: Decimal | None = Field(None, gt=0)
    stop_price: Decimal | None = Field(None, gt=0)
    stop_loss: Decimal | None = Field(None, gt=0)
    take_profit: Decimal | None = Field(None, gt=0)
    reduce_only: bool = False
    time_in_force: Literal["GTC", "IOC", "FOK"] = "GTC"

    _side = field_validator("side", "type", mode="before")(_lower)

    @field_validator("time_in_force", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    def command_args(self) -> dict[str, Any]:
        """The service's arguments; a limit without ``price`` or a stop without ``stop_price`` is refused."""
        kind = OrderType(self.type)
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and self.price is None:
            raise InvalidInputError(f"price is required for {self.type} orders", field="price")
        if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and self.stop_price is None:
            raise InvalidInputError(f"stop_price is required for {self.type} orders", field="stop_price")
        return dict(symbol=self.symbol, side=OrderSide(self.side), type=kind, quantity=self.quantity,
                    price=self.price, stop_price=self.stop_price, stop_loss=self.stop_loss,
                    take_profit=self.take_profit, reduce_only=self.reduce_only,
                    time_in_force=TimeInForce(self.time_in_force.lower()))


class ClosePositionIn(Strict):
    quantity: Decimal | None = Field(None, gt=0)
    type: Literal["market"] = "market"

    _type = field_validator("type", mode="before")(_lower)


class LeverageIn(Strict):
    leverage: int


class BotStartIn(Strict):
    paper_trading: bool = True
    strategies: list[str] | None = None


class BotStopIn(Strict):
    close_positions: bool = False


class StrategyUpdate(Strict):
    enabled: bool | None = None
    parameters: dict[str, Any] | None = None


class BacktestCreate(Strict):
    strategy: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=40)
    start_date: date | datetime
    end_date: date | datetime
    initial_balance: Decimal = Field(Decimal(10_000), gt=0)
    leverage: int = 1
    commission_rate: Decimal = Field(Decimal("0.001"), ge=0, lt=Decimal("0.1"))
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeframe: str | None = None

    def range(self) -> tuple[datetime, datetime]:
        start = parse_when(self.start_date, field="start_date")
        end = parse_when(self.end_date, field="end_date")
        if start is None or end is None:
            raise InvalidInputError("start_date and end_date are required", field="start_date")
        return start, end


def parse_time(value: str | None, field: str) -> datetime | None:
    """Read an ISO 8601 query parameter (``Z`` or offset; none means UTC)."""
    return parse_when(value, field=field)


# ---------------------------------------------------------------------------- replies


def _time(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def account_out(a: PaperAccount) -> dict[str, Any]:
    return {"account_id": a.id, "exchange": a.exchange, "account_type": a.account_type, "status": a.status,
            "created_at": _time(a.created_at)}


def balance_out(v: BalanceView) -> dict[str, Any]:
    return {
        "balances": [{"asset": b.asset, "free": number(b.free), "locked": number(b.locked), "total": number(b.total)}
                     for b in v.balances],
        "total_equity_usd": number(v.equity),
        "available_margin": number(v.available_margin),
        "used_margin": number(v.used_margin),
        "margin_level": number(v.margin_level.quantize(Decimal("0.01"))) if v.margin_level is not None else None,
    }


def positions_out(v: PositionsView) -> dict[str, Any]:
    rows = []
    for pv in v.positions:
        p = pv.position
        rows.append({
            "id": p.id, "symbol": p.symbol, "side": p.side.value, "quantity": number(p.quantity),
            "entry_price": number(p.entry_price), "current_price": number(pv.mark), "leverage": p.leverage,
            "margin": number(p.margin), "unrealized_pnl": number(pv.unrealized_pnl),
            "unrealized_pnl_pct": number(pv.unrealized_pnl_pct.quantize(Decimal("0.0001"))),
            "liquidation_price": number(pv.liquidation_price), "stop_loss": number(p.stop_loss),
            "take_profit": number(p.take_profit), "opened_at": _time(p.opened_at),
        })
    return {"positions": rows, "total_unrealized_pnl": number(v.total_unrealized_pnl),
            "total_margin_used": number(v.total_margin_used)}


def order_out(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.id, "symbol": o.symbol, "side": o.side.value, "type": o.type.value,
        "quantity": number(o.quantity), "filled_quantity": number(o.filled_quantity),
        "avg_fill_price": number(o.avg_fill_price), "status": o.status.value,
        "price": number(o.price), "stop_price": number(o.stop_price), "stop_loss": number(o.stop_loss),
        "take_profit": number(o.take_profit), "reduce_only": o.reduce_only,
        "time_in_force": o.time_in_force.value.upper(), "commission": number(o.fees),
        "created_at": _time(o.created_at), "updated_at": _time(o.updated_at),
    }


def cancel_out(o: Order) -> dict[str, Any]:
    return {"order_id": o.id, "status": o.status.value, "cancelled_at": _time(o.updated_at)}


def close_out(r: CloseResult) -> dict[str, Any]:
    o = r.order
    return {"order_id": o.id, "symbol": o.symbol, "side": o.side.value, "quantity": number(o.quantity),
            "filled_quantity": number(o.filled_quantity), "avg_fill_price": number(o.avg_fill_price),
            "realized_pnl": number(r.realized_pnl), "commission": number(o.fees), "status": o.status.value}


def close_all_out(results: list[CloseResult]) -> dict[str, Any]:
    total = sum((r.realized_pnl for r in results), Decimal(0))
    return {"closed_positions": len(results), "total_realized_pnl": number(total),
            "orders": [{"symbol": r.order.symbol, "order_id": r.order.id, "pnl": number(r.realized_pnl)}
                       for r in results]}


def _pct(value: Decimal | None) -> int | float:
    return number(value) if value is not None else 0


def _or_zero(value: Decimal | None) -> int | float:
    return number(value) if value is not None else 0


def trades_out(page: TradePage) -> dict[str, Any]:
    rows = [{
        "id": t.id, "symbol": t.symbol, "side": t.side.value, "entry_price": number(t.entry_price),
        "exit_price": number(t.exit_price), "quantity": number(t.quantity), "pnl": number(t.pnl),
        "pnl_pct": number(t.pnl_pct.quantize(Decimal("0.0001"))), "commission": number(t.commission),
        "strategy": t.strategy or "manual", "exit_reason": t.exit_reason.value,
        "entry_time": _time(t.entry_at), "exit_time": _time(t.exit_at),
        "duration_seconds": int(t.duration.total_seconds()),
    } for t in page.trades]
    s = page.stats
    return {"trades": rows, "total_count": page.total_count,
            "summary": {"total_pnl": number(s.total_pnl), "win_rate": _pct(s.win_rate),
                        "profit_factor": number(s.profit_factor)}}


def _stats(s: TradeStats) -> dict[str, Any]:
    return {"trades": s.trades, "winning_trades": s.winning_trades, "losing_trades": s.losing_trades,
            "win_rate": _pct(s.win_rate), "profit_factor": number(s.profit_factor),
            "largest_win": _or_zero(s.largest_win), "largest_loss": _or_zero(s.largest_loss),
            "avg_win": _or_zero(s.avg_win), "avg_loss": _or_zero(s.avg_loss)}


def pnl_out(r: PnlReport) -> dict[str, Any]:
    return {
        "period": r.period.value, "date": r.start.isoformat() if r.start else None,
        "realized_pnl": number(r.realized_pnl), "unrealized_pnl": number(r.unrealized_pnl),
        "total_pnl": number(r.total_pnl), **_stats(r.stats),
        "by_strategy": [{"strategy": g.name, "pnl": number(g.pnl), "trades": g.trades} for g in r.by_strategy],
        "by_symbol": [{"symbol": g.name, "pnl": number(g.pnl), "trades": g.trades} for g in r.by_symbol],
    }


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {k: number(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def strategy_out(v: StrategyView) -> dict[str, Any]:
    return {"name": v.name, "type": v.kind, "enabled": v.enabled, "parameters": _params(v.parameters),
            "performance": {"total_signals": v.total_signals, "accuracy": _pct(v.accuracy),
                            "avg_return": _pct(v.avg_return)}}


def strategy_updated_out(v: StrategyView) -> dict[str, Any]:
    return {"name": v.name, "enabled": v.enabled, "parameters": _params(v.parameters),
            "updated_at": _time(v.updated_at)}


def bot_status_out(v: BotStatusView) -> dict[str, Any]:
    return {
        "status": "running" if v.running else "stopped", "trading_enabled": v.running, "paper_trading": v.paper,
        "uptime_seconds": v.uptime_s, "started_at": _time(v.started_at),
        "strategies": [{"name": n, "enabled": e, "signals_today": c} for n, e, c in v.strategies],
        "performance": {"daily_pnl": number(v.daily.total_pnl), "daily_trades": v.daily.trades,
                        "win_rate": _pct(v.daily.win_rate)},
    }


def _round(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def backtest_out(v: BacktestView) -> dict[str, Any]:
    body: dict[str, Any] = {"backtest_id": v.id, "status": v.status, "progress": int(v.progress)}
    if v.result is not None:
        m = v.result.get("metrics", {})
        body["result"] = {
            "initial_balance": v.result.get("initial_balance"), "final_balance": _round(v.result.get("final_equity"), 8),
            "total_return": _round(m.get("total_return_pct"), 4), "total_trades": m.get("total_trades"),
            "winning_trades": m.get("winning_trades"), "losing_trades": m.get("losing_trades"),
            "win_rate": _round(m.get("win_rate_pct") or 0.0, 2), "profit_factor": _round(m.get("profit_factor"), 4),
            "max_drawdown": _round(m.get("max_drawdown_pct"), 4), "sharpe_ratio": _round(m.get("sharpe"), 4),
            "sortino_ratio": _round(m.get("sortino"), 4), "calmar_ratio": _round(m.get("calmar"), 4),
            "avg_trade_duration": m.get("avg_trade_duration"), "bars": v.result.get("bars"),
            "timeframe": v.result.get("timeframe"),
        }
    else:
        body["result"] = None
    if v.error:
        body["error"] = v.error
    return body


def backtest_created_out(v: BacktestView) -> dict[str, Any]:
    return {"backtest_id": v.id, "status": v.status,
            "message": "Backtest started, check status endpoint for results"}
