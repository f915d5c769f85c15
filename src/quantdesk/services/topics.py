"""Bus topic names shared by the services that publish and the push surfaces that forward.

Private channels are per user (``u7:orders``); market data is global (``market:BTCUSDT``,
``bars:BTCUSDT``, ``book:BTCUSDT``, keyed by the instrument's storage key).
"""

from __future__ import annotations

PRIVATE_CHANNELS = ("account", "orders", "positions", "signals")


def user_topic(user_id: int, channel: str) -> str:
    """Bus topic carrying one user's private channel (``u7:orders``)."""
    return f"u{user_id}:{channel}"


def market_topic(key: str) -> str:
    """Ticks of one instrument (``market:BTCUSDT``)."""
    return f"market:{key}"
