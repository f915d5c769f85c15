"""Small pieces every HTTP-speaking adapter needs: retry hints, message clipping, range checks, bar frames.

Shared by the data feeds (ccxt, Yahoo, OpenAlgo) and the ccxt broker so each venue module
holds only its venue's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import SessionRules
from quantdesk.services.ports import BAR_COLUMNS

MESSAGE_LIMIT = 300


def wall_clock() -> datetime:
    return datetime.now(UTC)


class MalformedResponseError(Exception):
    """A reply that does not parse as the venue's format (retried like a transient failure)."""


def retry_after_seconds(value: str | Mapping[str, str] | None) -> float:
    """Seconds from a ``Retry-After`` value or a headers mapping holding one; 0 when absent or unreadable."""
    if isinstance(value, Mapping):
        value = value.get("Retry-After") or value.get("retry-after")
    try:
        return max(float(value), 0.0) if value else 0.0
    except (TypeError, ValueError):
        return 0.0


def clip(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """``value`` as text of at most ``limit`` characters (upstream bodies can be huge)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_range(start: datetime, end: datetime) -> None:
    """Raise InvalidInputError unless both bounds are aware datetimes and ``start <= end``."""
    for field, at in (("start", start), ("end", end)):
        if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise InvalidInputError(f"{field} {at!r} must be a timezone-aware datetime", field=field)
    if start > end:
        raise InvalidInputError(
            f"start {start.isoformat()} is after end {end.isoformat()}; start must be at or before end",
            field="start",
        )


def offered_interval(tf: Timeframe, intervals: Mapping[Timeframe, str], venue: str) -> str:
    """The venue's spelling of ``tf``, or InvalidInputError listing what the venue offers."""
    interval = intervals.get(tf)
    if interval is None:
        offered = ", ".join(t.value for t in intervals)
        raise InvalidInputError(f"timeframe {tf.value} is not offered by {venue}; use one of {offered}",
                                field="timeframe")
    return interval


def session_open_at(stamp: int, tf: Timeframe, rules: SessionRules) -> datetime:
    """A bar's open time from an epoch-seconds stamp: the session open for daily bars, else on the session grid."""
    at = datetime.fromtimestamp(stamp, UTC)
    if rules.continuous:
        return datetime.fromtimestamp(stamp // tf.seconds * tf.seconds, UTC)
    opens = datetime.combine(rules.local_date(at), rules.open_time, tzinfo=rules.tz).astimezone(UTC)  # type: ignore[arg-type]
    if tf == Timeframe.D1:
        return opens
    if at < opens:
        return at
    return opens + ((at - opens) // tf.delta) * tf.delta


def rows_frame(rows: list[tuple[datetime, float, float, float, float, float]]) -> pd.DataFrame:
    """The standard bar frame from (open_at, o, h, l, c, v) rows; on equal open times the later row wins."""
    latest = {row[0]: row[1:] for row in rows}
    times = sorted(latest)
    values = np.array([latest[t] for t in times], dtype=np.float64).reshape(len(times), 5)
    index = pd.DatetimeIndex(times, name="open_at") if times else pd.DatetimeIndex([], name="open_at", tz=UTC)
    index = index.tz_convert(UTC).astype("datetime64[ns, UTC]")
    return pd.DataFrame({name: values[:, i] for i, name in enumerate(BAR_COLUMNS)}, index=index)


def rebase_urls(urls: Any, base_url: str) -> Any:
    """Replace scheme and host of every URL in ccxt's (possibly nested) ``urls['api']``."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base_url + parts.path if parts.scheme.startswith("http") else urls
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    return urls
