"""The Breakout stream on the shared ``/ws``: each client's ``engine`` channel carries its user's events too.

The shared socket subscribes every client to the channel ``engine`` (bus topic ``engine``,
events for everyone); this connect hook widens that one subscription to the user's own
Breakout topic (``u7:engine``), so ``ENGINE_UPDATE``, ``POSITION_UPDATE``, ... reach only their
user, and go away with the channel when the client switches to Scalper channels.
"""

from __future__ import annotations

from typing import Any

from quantdesk.services.breakout import engine_topic

CHANNEL = "engine"


async def subscribe_user_stream(client: Any) -> None:
    """``app.state.ws_on_connect`` hook: the ``engine`` channel listens to ``engine`` and ``u7:engine``."""
    old = client.subs.get(CHANNEL)
    if old is None:
        return
    new = client.bus.subscribe(*old.patterns, engine_topic(client.principal.user_id), maxsize=256, lossless=True)
    client.subs[CHANNEL] = new
    old.close()
