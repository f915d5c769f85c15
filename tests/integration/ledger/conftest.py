"""The ledger tests run on SQLite (a temp file) and on PostgreSQL (the session database)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


@pytest.fixture
def db(migrated_engine: sa.Engine) -> sa.Engine:
    """A migrated engine (SQLite and PostgreSQL); each test makes its own trading account."""
    return migrated_engine
