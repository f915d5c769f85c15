"""Exact money arithmetic: Decimal construction, quantizing with a named rounding mode, Money.

Every helper takes the rounding mode explicitly and evaluates in :data:`MONEY_CONTEXT`, so
results never depend on the ambient ``decimal`` context of the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    InvalidOperation,
)

from quantdesk.core.errors import InvalidInputError

__all__ = [
    "MONEY_CONTEXT",
    "ZERO",
    "ONE",
    "CENT",
    "ROUND_CEILING",
    "ROUND_DOWN",
    "ROUND_FLOOR",
    "ROUND_HALF_EVEN",
    "ROUND_HALF_UP",
    "ROUND_UP",
    "Money",
    "to_decimal",
    "quantize",
    "quantize_step",
    "floor_div",
    "minor_unit",
]

# 60 significant digits: products of prices, quantities and fee rates stay exact; only an
# explicit division or quantize ever rounds.
MONEY_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")

# Minor units of the currencies we settle in; unknown assets default to 1e-8 (crypto).
_MINOR_UNITS = {
    "USD": CENT,
    "EUR": CENT,
    "INR": CENT,
    "USDT": Decimal("1e-8"),
    "USDC": Decimal("1e-8"),
    "BTC": Decimal("1e-8"),
    "ETH": Decimal("1e-8"),
}


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert ``value`` to a finite Decimal; floats go through ``str`` (never ``Decimal(float)``).

    Raises InvalidInputError naming ``field`` for booleans, NaN, infinities and unparsable text.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise InvalidInputError(f"{field} must be a number, got {value!r}", field=field)
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInputError(f"{field} must be a number, got {value!r}", field=field) from None
    else:
        # numpy scalars and the like: go through their shortest repr
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise InvalidInputError(f"{field} must be a number, got {value!r}", field=field) from None
    if not result.is_finite():
        raise InvalidInputError(f"{field} must be finite, got {value!r}", field=field)
    return result


def quantize(value: Decimal, exponent: Decimal, rounding: str) -> Decimal:
    """Round ``value`` to the exponent of ``exponent`` (e.g. ``Decimal('0.01')``) with ``rounding``."""
    return value.quantize(exponent, rounding=rounding, context=MONEY_CONTEXT)


def quantize_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (a tick or lot size that need not be a power of ten)."""
    if step <= 0:
        raise InvalidInputError(f"step must be positive, got {step}", field="step")
    units = MONEY_CONTEXT.divide(value, step).to_integral_value(rounding=rounding, context=MONEY_CONTEXT)
    return MONEY_CONTEXT.multiply(units, step).quantize(step, context=MONEY_CONTEXT)


def floor_div(numerator: Decimal, denominator: Decimal) -> int:
    """Return the largest integer ``n`` with ``n * denominator <= numerator`` (both positive), exactly."""
    if denominator <= 0:
        raise InvalidInputError(f"denominator must be positive, got {denominator}", field="denominator")
    q = MONEY_CONTEXT.divide_int(numerator, denominator)
    # divide_int truncates toward zero; step down once for negative non-integral quotients
    if numerator < 0 and MONEY_CONTEXT.multiply(q, denominator) != numerator:
        q -= 1
    return int(q)


def minor_unit(currency: str) -> Decimal:
    """Return the smallest settled amount of ``currency`` (0.01 USD, 1e-8 USDT)."""
    return _MINOR_UNITS.get(currency.upper(), Decimal("1e-8"))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency; amounts of two currencies never add."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", to_decimal(self.amount, field="amount"))
        if not self.currency:
            raise InvalidInputError("currency is required", field="currency")

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidInputError(
                f"cannot combine {self.currency} with {other.currency} without an explicit rate",
                field="currency",
            )

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(MONEY_CONTEXT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(MONEY_CONTEXT.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, Money | float):
            raise TypeError("Money multiplies only by an exact Decimal or int")
        return Money(MONEY_CONTEXT.multiply(self.amount, Decimal(factor)), self.currency)

    __rmul__ = __mul__

    def convert(self, rate: Decimal, currency: str) -> Money:
        """Convert at an explicit ``rate`` (units of ``currency`` per unit of this currency)."""
        return Money(MONEY_CONTEXT.multiply(self.amount, rate), currency)

    def rounded(self, rounding: str = ROUND_HALF_EVEN) -> Money:
        """Round to the currency's minor unit with the named mode."""
        return Money(quantize(self.amount, minor_unit(self.currency), rounding), self.currency)
