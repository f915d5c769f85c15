"""What survives a restart of a user's bot: the BotStateStore port, its snapshot and the in-memory default.

A :class:`BotSnapshot` is the whole of it: whether the bot runs (since when, in which mode,
which strategies with which parameters), its signal counters, and the strategy settings the
user changed. The trading service saves a fresh snapshot under the account's lock after every
change, before the change is acknowledged, and loads it when it rebuilds the account's session.

Parameter values go in typed by the strategy's schema (int, float, bool, Decimal). A store may
give them back in their JSON form (a Decimal as text): the service validates them against the
schema again on load, so the store need not know the types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StrategySetting:
    """A strategy's settings as the user left them (only strategies the user changed are kept)."""

    name: str
    enabled: bool
    parameters: Mapping[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveStrategy:
    """A strategy the running bot hosts, with the parameters it was started with."""

    name: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BotSnapshot:
    """One user's bot and strategy settings; ``started_at`` is UTC, ``signals_day`` the UTC day counted."""

    running: bool = False
    paper: bool = True
    started_at: datetime | None = None
    active: tuple[ActiveStrategy, ...] = ()
    signals_total: Mapping[str, int] = field(default_factory=dict)
    signals_today: Mapping[str, int] = field(default_factory=dict)
    signals_day: date | None = None
    strategies: tuple[StrategySetting, ...] = ()


class BotStateStore(Protocol):
    """Keeps each user's :class:`BotSnapshot` (one per user, replaced whole on every save)."""

    def load(self, user_id: int) -> BotSnapshot | None:
        """The user's last saved snapshot, or None if nothing was ever saved."""
        ...

    def save(self, user_id: int, snapshot: BotSnapshot) -> None:
        """Replace the user's snapshot (one transaction: all of it or none)."""
        ...

    def running_user_ids(self) -> list[int]:
        """The users whose saved bot is running (resumed when the server starts)."""
        ...


class MemoryBotStateStore:
    """Snapshots in memory: the default, so a restart forgets them."""

    def __init__(self) -> None:
        self._snapshots: dict[int, BotSnapshot] = {}

    def load(self, user_id: int) -> BotSnapshot | None:
        return self._snapshots.get(user_id)

    def save(self, user_id: int, snapshot: BotSnapshot) -> None:
        self._snapshots[user_id] = snapshot

    def running_user_ids(self) -> list[int]:
        return sorted(uid for uid, s in self._snapshots.items() if s.running)


__all__ = ["ActiveStrategy", "BotSnapshot", "BotStateStore", "MemoryBotStateStore", "StrategySetting"]
