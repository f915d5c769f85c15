"""Clock implementations: SimulatedClock (moved by the feed) and WallClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quantdesk.core.errors import InvalidInputError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimulatedClock:
    """A clock that only moves when told to; never goes backwards.

    Time is kept as integer nanoseconds since the epoch so a backtest can move it once per
    bar cheaply; ``now()`` builds the datetime only when asked.
    """

    __slots__ = ("_ns",)

    def __init__(self, start: datetime | None = None):
        self._ns = 0
        if start is not None:
            self.set(start)

    def now(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self._ns // 1000)

    @property
    def ns(self) -> int:
        return self._ns

    def set_ns(self, ns: int) -> None:
        if ns < self._ns:
            raise InvalidInputError(f"clock cannot move backwards from {self._ns} to {ns} ns", field="time")
        self._ns = ns

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise InvalidInputError("SimulatedClock needs an aware datetime (UTC)", field="time")
        delta = at - _EPOCH
        self.set_ns((delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000)

    def advance(self, delta: timedelta) -> None:
        self.set(self.now() + delta)


class WallClock:
    """The real time, aware UTC."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)
