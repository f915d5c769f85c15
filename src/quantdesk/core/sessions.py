"""Exchange session rules: when a venue trades and where its bars start and end.

A :class:`SessionRules` value holds the zone, the daily hours, the trading weekdays and the
holiday set as *data* (the holiday list comes from an adapter, e.g. exchange_calendars), so
the rules stay pure. All inputs and outputs are timezone-aware UTC datetimes except
``date`` values, which are trading days in the venue's own zone.

Bar alignment:

* continuous venues (crypto) align bars to the UTC epoch: ``1d`` bars are UTC days, ``4h``
  bars open at 00:00, 04:00, ... UTC;
* session venues (NSE) align bars to the session open: a ``1h`` bar opens at 09:15, 10:15,
  ..., 15:15 IST and the last one is cut short at the 15:30 close; the ``1d`` bar opens at
  the session open. A bar is complete at ``min(open_at + timeframe, session close)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Trading hours of one venue; ``open_time is None`` means continuous (24/7) trading."""

    name: str
    zone: str = "UTC"
    open_time: time | None = None
    close_time: time | None = None
    weekdays: frozenset[int] = frozenset(range(7))
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if (self.open_time is None) != (self.close_time is None):
            raise InvalidInputError(
                "open_time and close_time must both be set or both be None", field="open_time"
            )
        if self.open_time is not None and self.close_time is not None and self.open_time >= self.close_time:
            raise InvalidInputError(
                f"open_time {self.open_time} must be before close_time {self.close_time}", field="open_time"
            )

    @property
    def continuous(self) -> bool:
        return self.open_time is None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def with_holidays(self, holidays: Iterable[date]) -> SessionRules:
        """Return a copy whose holiday set is ``holidays``."""
        return SessionRules(
            self.name, self.zone, self.open_time, self.close_time, self.weekdays, frozenset(holidays)
        )

    def is_trading_day(self, day: date) -> bool:
        """Whether ``day`` (a date in the venue's zone) has a session."""
        return day.weekday() in self.weekdays and day not in self.holidays

    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """UTC open and close of ``day``'s session, or None when the venue is closed that day."""
        if not self.is_trading_day(day):
            return None
        if self.continuous:
            start = datetime(day.year, day.month, day.day, tzinfo=self.tz).astimezone(UTC)
            return start, (datetime(day.year, day.month, day.day, tzinfo=self.tz) + _DAY).astimezone(UTC)
        opens = datetime.combine(day, self.open_time or time(), tzinfo=self.tz).astimezone(UTC)
        closes = datetime.combine(day, self.close_time or time(), tzinfo=self.tz).astimezone(UTC)
        return opens, closes

    def local_date(self, at: datetime) -> date:
        """The calendar date of ``at`` in the venue's zone."""
        return _require_aware(at, "at").astimezone(self.tz).date()

    def trading_days(self, first: date, last: date) -> list[date]:
        """Trading days from ``first`` to ``last`` inclusive."""
        out: list[date] = []
        day = first
        while day <= last:
            if self.is_trading_day(day):
                out.append(day)
            day += _DAY
        return out

    def is_open(self, at: datetime) -> bool:
        """Whether the venue trades at instant ``at``."""
        bounds = self.session(self.local_date(at))
        return bounds is not None and bounds[0] <= at < bounds[1]

    def next_open(self, at: datetime) -> datetime:
        """The first instant at or after ``at`` when the venue trades (``at`` itself if open)."""
        if self.is_open(at):
            return at
        day = self.local_date(at)
        for _ in range(3660):
            bounds = self.session(day)
            if bounds is not None and bounds[0] >= at:
                return bounds[0]
            day += _DAY
        raise InvalidInputError(
            f"no session of {self.name} within ten years after {at.isoformat()}", field="at"
        )


def crypto_rules() -> SessionRules:
    """Continuous 24/7 trading with UTC days."""
    return SessionRules(name="CRYPTO")


def nse_rules(holidays: Iterable[date] = ()) -> SessionRules:
    """NSE cash market: 09:15-15:30 Asia/Kolkata, Monday-Friday, minus ``holidays``."""
    return SessionRules(
        name="NSE",
        zone="Asia/Kolkata",
        open_time=time(9, 15),
        close_time=time(15, 30),
        weekdays=frozenset(range(5)),
        holidays=frozenset(holidays),
    )


def bar_bounds_of_day(
    rules: SessionRules, timeframe: Timeframe, day: date
) -> list[tuple[datetime, datetime]]:
    """(open_at, close_at) in UTC of every bar of ``timeframe`` belonging to trading day ``day``.

    For continuous venues a day is a UTC day (zone UTC) and ``4h``/``1d`` bars tile it exactly.
    """
    bounds = rules.session(day)
    if bounds is None:
        return []
    opens, closes = bounds
    step = timeframe.delta
    out: list[tuple[datetime, datetime]] = []
    at = opens
    while at < closes:
        out.append((at, min(at + step, closes)))
        at += step
    return out


def bar_open_times(
    rules: SessionRules, timeframe: Timeframe, start: datetime, end: datetime
) -> list[datetime]:
    """Open times (UTC) of every bar of ``timeframe`` with ``start <= open_at < end``.

    Raises InvalidInputError when ``start`` is after ``end`` or either is naive.
    """
    _check_range(start, end)
    if rules.continuous and rules.zone == "UTC" and len(rules.weekdays) == 7 and not rules.holidays:
        step = timeframe.seconds
        first = -(-int((start - _EPOCH).total_seconds()) // step) * step
        out = []
        at = _EPOCH + timedelta(seconds=first)
        while at < end:
            out.append(at)
            at += timeframe.delta
        return out
    out = []
    for day in rules.trading_days(rules.local_date(start) - _DAY, rules.local_date(end)):
        out.extend(o for o, _ in bar_bounds_of_day(rules, timeframe, day) if start <= o < end)
    return out


def bar_close_at(rules: SessionRules, timeframe: Timeframe, open_at: datetime) -> datetime:
    """When the bar opening at ``open_at`` completes: ``open_at + timeframe``, cut at the session close."""
    closes = open_at + timeframe.delta
    if rules.continuous:
        return closes
    bounds = rules.session(rules.local_date(open_at))
    return min(closes, bounds[1]) if bounds else closes


def settled_bars(rules: SessionRules, timeframe: Timeframe, now: datetime) -> tuple[datetime | None, datetime]:
    """(open of the newest bar closed by ``now``, open of the oldest bar not closed by ``now``).

    Every bar opening before the second instant has closed and none opening at or after it
    has, so a series holding the first bar is complete up to the second (e.g. an NSE daily
    series, after the close, through the next session's open). The first is None when no
    bar closed within ten years. Raises InvalidInputError for a naive ``now``.
    """
    day = rules.local_date(_require_aware(now, "now"))
    pending = None
    for offset in range(-1, 3660):  # a day's bars close within that local day
        pending = next((o for o, c in bar_bounds_of_day(rules, timeframe, day + offset * _DAY) if c > now), None)
        if pending is not None:
            break
    if pending is None:
        raise InvalidInputError(f"no session of {rules.name} within ten years after {now.isoformat()}", field="now")
    for offset in range(1, 3661):
        closed = [o for o, c in bar_bounds_of_day(rules, timeframe, day + (1 - offset) * _DAY) if c <= now]
        if closed:
            return closed[-1], pending
    return None, pending


def lookback_start(rules: SessionRules, timeframe: Timeframe, end: datetime, count: int) -> datetime:
    """An instant early enough that ``[result, end)`` holds at least ``count`` bars of ``timeframe``
    that have closed by ``end`` (a session's bar still open at ``end`` does not count)."""
    if count < 0:
        raise InvalidInputError(f"lookback {count} must be zero or positive", field="lookback")
    _require_aware(end, "end")
    if rules.continuous:
        return end - timeframe.delta * (count + 1)
    found = 0
    day = rules.local_date(end)
    for _ in range(count * 2 + 3660):
        found += sum(1 for _, c in bar_bounds_of_day(rules, timeframe, day) if c <= end)
        if found >= count:
            break
        day -= _DAY
    bounds = rules.session(day)
    return bounds[0] if bounds else datetime.combine(day, time(), tzinfo=rules.tz).astimezone(UTC)


def _require_aware(at: datetime, name: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{name} {at!r} must be a timezone-aware datetime", field=name)
    return at


def _check_range(start: datetime, end: datetime) -> None:
    _require_aware(start, "start")
    _require_aware(end, "end")
    if start > end:
        raise InvalidInputError(
            f"start {start.isoformat()} is after end {end.isoformat()}; start must be at or before end",
            field="start",
        )
