"""Rows tests need in a migrated database."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from quantdesk.adapters.db.tables import users


def add_user(engine: sa.Engine, name: str) -> int:
    """A user row with a unique name (``name`` plus a timestamp); returns its id."""
    with engine.begin() as c:
        return c.execute(users.insert().values(username=f"{name}_{datetime.now(UTC).timestamp()}", password_hash="x",
                                               role="user", is_active=True, created_at=datetime.now(UTC))
                         ).inserted_primary_key[0]
