"""Messages of the shared ``/ws`` channel protocol (orders, positions, account, signals).

``/ws`` forwards bus messages verbatim to every surface's clients, so the trading service
publishes them already in the channel protocol's shapes (2-crypto-scalper-api.md, "WebSocket
API"): ``{"type": "order", "data": {...}}`` and so on. Amounts are JSON numbers (a Redis bus
would turn Decimals into strings), quantized to 1e-10 first so no float noise appears.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from quantdesk.core.orders import Order
from quantdesk.core.portfolio import Position, PositionSide

_STEP = Decimal("1e-10")


def number(value: Decimal | None) -> int | float | None:
    """A JSON number for an amount: exact integers stay ints, the rest floats after quantizing to 1e-10."""
    if value is None:
        return None
    q = value.quantize(_STEP, rounding=ROUND_HALF_EVEN)
    return int(q) if q == q.to_integral_value() else float(q)


def stamp(at: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z`` (2024-01-15T10:00:00.123Z)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_message(order: Order, at: datetime) -> dict[str, Any]:
    """An order update: its status and fill progress after a command or a fill."""
    return {
        "type": "order",
        "data": {
            "order_id": order.id,
            "symbol": order.symbol,
            "side": order.side.value,
            "order_type": order.type.value,
            "status": order.status.value,
            "quantity": number(order.quantity),
            "filled_quantity": number(order.filled_quantity),
            "avg_fill_price": number(order.avg_fill_price),
            "timestamp": stamp(at),
        },
    }


def position_message(symbol: str, position: Position | None, side: PositionSide | None, mark: Decimal | None,
                     at: datetime) -> dict[str, Any]:
    """A position update; a closed position is sent once with quantity 0."""
    if position is None:
        data: dict[str, Any] = {"symbol": symbol, "side": side.value if side else None, "quantity": 0,
                                "entry_price": None, "current_price": number(mark), "unrealized_pnl": 0}
    else:
        price = mark if mark is not None else position.entry_price
        data = {"position_id": position.id, "symbol": symbol, "side": position.side.value,
                "quantity": number(position.quantity), "entry_price": number(position.entry_price),
                "current_price": number(price), "unrealized_pnl": number(position.unrealized_pnl(price))}
    data["timestamp"] = stamp(at)
    return {"type": "position", "data": data}


def account_message(equity: Decimal, wallet: Decimal, available: Decimal, used: Decimal,
                    currency: str, at: datetime) -> dict[str, Any]:
    """An account update after a change of balance or margin."""
    return {
        "type": "account",
        "data": {
            "asset": currency,
            "wallet_balance": number(wallet),
            "total_equity_usd": number(equity),
            "available_margin": number(available),
            "used_margin": number(used),
            "timestamp": stamp(at),
        },
    }


def signal_message(strategy: str, symbol: str, action: str, price: Decimal | None, at: datetime, *,
                   strength: float = 1.0, stop_loss: Decimal | None = None,
                   take_profit: Decimal | None = None) -> dict[str, Any]:
    """A strategy signal (the bot acted on it through the account's kernel)."""
    return {
        "type": "signal",
        "data": {
            "strategy": strategy,
            "symbol": symbol,
            "action": action,
            "strength": strength,
            "entry_price": number(price),
            "stop_loss": number(stop_loss),
            "take_profit": number(take_profit),
            "timestamp": stamp(at),
        },
    }
