"""Column types for exact money and UTC time, identical on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.types import TypeDecorator

# Wide enough for any engine value (the engine computes with 60 significant digits); used only to
# normalise on read, so the ambient 28-digit context never rounds a stored amount.
_READ_CONTEXT = Context(prec=200)


class Money(TypeDecorator):
    """Exact Decimal: unconstrained NUMERIC on PostgreSQL, decimal text on SQLite (whose NUMERIC is a float).

    Unconstrained because the ledger's pro-rata fee splits carry up to 60 significant digits;
    NUMERIC(p, s) would round them.
    """

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("Money columns take Decimal, int or str, never float")
        d = Decimal(value)
        if not d.is_finite():
            raise ValueError(f"Money value {value!r} is not finite")
        if dialect.name == "postgresql":
            return d
        return format(d, "f")

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        d = Decimal(value) if not isinstance(value, Decimal) else value
        # give back the shortest exact form (no trailing zeros), never exponent notation for integers
        if d == d.to_integral_value():
            return d.quantize(Decimal(1), context=_READ_CONTEXT)
        return d.normalize(context=_READ_CONTEXT)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes; naive values are refused, UTC is re-attached on SQLite reads."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} refused; use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
