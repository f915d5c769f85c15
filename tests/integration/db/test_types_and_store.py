"""Exact money and UTC time survive SQLite and PostgreSQL round trips; migrations apply on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.adapters.db.engine import make_engine, migrate
from quantdesk.adapters.db.types import Money, UtcDateTime


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path}/t.db"
    eng = make_engine(url)
    md = sa.MetaData()
    table = sa.Table("rt_" + request.param, md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("amount", Money), sa.Column("at", UtcDateTime))
    md.drop_all(eng)
    md.create_all(eng)
    yield eng, table
    md.drop_all(eng)
    eng.dispose()


money = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=12, allow_nan=False,
                    allow_infinity=False)


@given(values=st.lists(money, min_size=1, max_size=20))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_money_round_trips_exactly(engine, values):
    eng, table = engine
    with eng.begin() as c:
        c.execute(table.delete())
        c.execute(table.insert(), [{"id": i, "amount": v} for i, v in enumerate(values)])
    with eng.connect() as c:
        back = [r.amount for r in c.execute(sa.select(table).order_by(table.c.id))]
    assert back == values
    assert all(isinstance(b, Decimal) for b in back)


def test_money_refuses_float(engine):
    eng, table = engine
    with pytest.raises(sa.exc.StatementError):
        with eng.begin() as c:
            c.execute(table.insert().values(id=1, amount=0.1))


def test_datetimes_come_back_aware_utc_and_naive_is_refused(engine):
    eng, table = engine
    ist = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2024, 1, 15, 15, 30, 0, 123456, tzinfo=ist)
    with eng.begin() as c:
        c.execute(table.insert().values(id=1, amount=Decimal("1"), at=at))
    with eng.connect() as c:
        back = c.execute(sa.select(table.c.at)).scalar_one()
    assert back == at and back.tzinfo is not None and back.utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError):
        with eng.begin() as c:
            c.execute(table.insert().values(id=2, at=datetime(2024, 1, 1)))  # noqa: DTZ001


def test_migrations_apply_twice_without_change(tmp_path, postgres_url):
    for url in (f"sqlite:///{tmp_path}/m.db", postgres_url):
        migrate(url)
        migrate(url)
        eng = make_engine(url)
        names = set(sa.inspect(eng).get_table_names())
        assert {"users", "api_keys", "alembic_version"} <= names
        eng.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path}/w.db")
    with eng.connect() as c:
        assert c.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    eng.dispose()


def test_now_is_aware():
    assert datetime.now(UTC).tzinfo is UTC
