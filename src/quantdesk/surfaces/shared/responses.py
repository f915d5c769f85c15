"""JSON rendering for every surface: Decimals become JSON numbers, datetimes ISO 8601 UTC with Z."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # numbers on the wire (contract): exact integers stay ints, the rest become floats
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def iso_utc(value: datetime) -> str:
    """2024-01-15T10:00:00Z (or with milliseconds when present)."""
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def dumps(content: Any) -> bytes:
    return orjson.dumps(
        content, default=_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
    )


class JsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
