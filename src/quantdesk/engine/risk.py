"""Pre-trade risk: position limits, daily loss limits, consecutive-loss stop, kill switch, sizing.

Risk only ever refuses orders that *open or increase* exposure; reducing and closing orders
always pass, so a halted engine can still get flat. Refusals are reason codes the kernel
turns into ``OrderDenied`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.instruments import Instrument
from quantdesk.core.money import MONEY_CONTEXT, ROUND_DOWN, ZERO, floor_div
from quantdesk.core.portfolio import RoundTrip

_C = MONEY_CONTEXT

KILL_SWITCH = "KILL_SWITCH"
MAX_POSITIONS = "RISK_MAX_POSITIONS"
DAILY_LOSS = "RISK_DAILY_LOSS"
DAILY_LOSS_R = "RISK_DAILY_LOSS_R"
CONSECUTIVE_LOSSES = "RISK_CONSECUTIVE_LOSSES"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Limits; ``None`` turns one off.

    ``risk_per_trade`` is the fraction of equity a trade may lose at its stop (0.01 = 1%).
    ``max_daily_loss`` is in account currency, ``max_daily_loss_r`` in R (sum of losing
    trades' R multiples for the UTC day). Daily limits reset at 00:00 UTC; the
    consecutive-loss stop holds until :meth:`RiskManager.reset` is called.
    """

    risk_per_trade: Decimal | None = None
    max_concurrent_positions: int | None = None
    max_daily_loss: Decimal | None = None
    max_daily_loss_r: Decimal | None = None
    max_consecutive_losses: int | None = None

    def __post_init__(self) -> None:
        if self.risk_per_trade is not None and not (0 < self.risk_per_trade <= 1):
            raise InvalidInputError(f"risk_per_trade must be in (0, 1], got {self.risk_per_trade}",
                                    field="risk_per_trade")
        for name in ("max_concurrent_positions", "max_consecutive_losses"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {value}", field=name)
        for name in ("max_daily_loss", "max_daily_loss_r"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInputError(f"{name} must be positive, got {value}", field=name)


class RiskManager:
    """Track the state the limits need and answer "may this order open exposure?"."""

    def __init__(self, limits: RiskLimits | None = None):
        self.limits = limits or RiskLimits()
        self.kill_switch = False
        self.kill_reason = ""
        self.consecutive_losses = 0
        self.day: int | None = None
        self.day_pnl = ZERO
        self.day_r = ZERO
        self.halted_code: str | None = None

    def engage_kill_switch(self, reason: str = "kill switch") -> None:
        self.kill_switch = True
        self.kill_reason = reason

    def release_kill_switch(self) -> None:
        self.kill_switch = False
        self.kill_reason = ""

    def reset(self) -> None:
        """Clear the consecutive-loss and daily halts (an operator decision)."""
        self.consecutive_losses = 0
        self.halted_code = None
        self.day_pnl = ZERO
        self.day_r = ZERO

    def _roll(self, day: int) -> None:
        if day != self.day:
            self.day = day
            self.day_pnl = ZERO
            self.day_r = ZERO
            if self.halted_code in (DAILY_LOSS, DAILY_LOSS_R):
                self.halted_code = None

    def check_open(self, *, day: int, open_positions: int, adds_position: bool) -> tuple[str, str] | None:
        """Return ``(code, reason)`` if an exposure-increasing order must be denied, else None."""
        self._roll(day)
        if self.kill_switch:
            return KILL_SWITCH, f"kill switch engaged: {self.kill_reason}"
        if self.halted_code is not None:
            return self.halted_code, f"trading halted by {self.halted_code}"
        cap = self.limits.max_concurrent_positions
        if adds_position and cap is not None and open_positions >= cap:
            return MAX_POSITIONS, f"{open_positions} positions open; the maximum is {cap}"
        return None

    def on_trade(self, trip: RoundTrip, day: int) -> tuple[str, str] | None:
        """Record a closed trade; return ``(code, reason)`` when it trips a halt."""
        self._roll(day)
        pnl = trip.pnl
        self.day_pnl = _C.add(self.day_pnl, pnl)
        r = trip.r_multiple
        if r is not None and r < 0:
            self.day_r = _C.add(self.day_r, r)
        self.consecutive_losses = self.consecutive_losses + 1 if pnl < 0 else 0
        lim = self.limits
        if self.halted_code is None:
            if lim.max_daily_loss is not None and -self.day_pnl >= lim.max_daily_loss:
                self.halted_code = DAILY_LOSS
                return DAILY_LOSS, f"daily loss {-self.day_pnl} reached the limit {lim.max_daily_loss}"
            if lim.max_daily_loss_r is not None and -self.day_r >= lim.max_daily_loss_r:
                self.halted_code = DAILY_LOSS_R
                return DAILY_LOSS_R, f"daily loss {-self.day_r}R reached the limit {lim.max_daily_loss_r}R"
            if lim.max_consecutive_losses is not None and self.consecutive_losses >= lim.max_consecutive_losses:
                self.halted_code = CONSECUTIVE_LOSSES
                return CONSECUTIVE_LOSSES, f"{self.consecutive_losses} consecutive losing trades"
        return None


def size_for_risk(
    *,
    equity: Decimal,
    risk_fraction: Decimal,
    entry_price: Decimal,
    stop_price: Decimal,
    instrument: Instrument,
    fee_rate: Decimal = ZERO,
) -> Decimal:
    """Quantity whose loss from ``entry_price`` to ``stop_price`` (plus both fees) is ``risk_fraction`` of equity.

    Rounds down to the instrument's lot size; returns 0 when even one lot risks too much.
    """
    if entry_price <= 0 or stop_price <= 0:
        raise InvalidInputError("entry and stop prices must be positive", field="stop_price")
    per_unit = _C.add(abs(_C.subtract(entry_price, stop_price)),
                      _C.multiply(fee_rate, _C.add(entry_price, stop_price)))
    if per_unit <= 0:
        raise InvalidInputError("stop_price must differ from the entry price", field="stop_price")
    budget = _C.multiply(equity, risk_fraction)
    lots = floor_div(budget, _C.multiply(per_unit, instrument.lot_size))
    return instrument.round_quantity(_C.multiply(Decimal(max(lots, 0)), instrument.lot_size), ROUND_DOWN)
