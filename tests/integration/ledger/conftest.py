"""The ledger tests run on SQLite (a temp file) and on PostgreSQL (the session database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from quantdesk.adapters.db.engine import make_engine, migrate


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path) -> Iterator[sa.Engine]:
    """A migrated engine; each test makes its own trading account, so tables need no cleaning."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/l.db"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
