"""The key vault and configured-strategy stores on SQLite and PostgreSQL: ownership, soft delete, exact params."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kit.db import add_user as _user
from quantdesk.adapters.db.key_vault import SqlKeyVaultStore
from quantdesk.adapters.db.key_vault_tables import exchange_api_keys
from quantdesk.adapters.db.ml_strategies import SqlConfiguredStrategyStore
from quantdesk.core.errors import ConfigError
from quantdesk.services.key_vault import KeyVault, StoredKey
from quantdesk.services.ml_strategies import ConfiguredStrategy
from quantdesk.services.secrets import SecretBox

IST = timezone(timedelta(hours=5, minutes=30))
KEY = "binanceKEY-0000000000000000000000000000abcd"
SECRET = "binanceSECRET-000000000000000000000000000wxyz"


@pytest.fixture
def engine(migrated_engine: sa.Engine) -> sa.Engine:
    return migrated_engine


def _row(uid: int, key_id: str, provider: str = "binance", at: datetime | None = None) -> StoredKey:
    at = at or datetime(2025, 1, 15, 16, 0, 0, 123456, tzinfo=IST)
    return StoredKey(key_id, uid, provider, "testnet", "label", "enc:v1:k", "enc:v1:s", "abcd...1234",
                     "wxyz...5678", True, at, at)


def test_key_store_filters_by_owner_and_soft_deletes(engine):
    store = SqlKeyVaultStore(engine)
    alice, bob = _user(engine, "alice"), _user(engine, "bob")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    store.add(_row(alice, first))
    store.add(_row(alice, second, provider="okx", at=datetime(2025, 1, 16, tzinfo=UTC)))  # listed after

    got = store.get(alice, first)
    assert got == _row(alice, first)  # times come back UTC, equal instants
    assert got.created_at.utcoffset() == timedelta(0)
    assert store.get(bob, first) is None
    assert [k.provider_id for k in store.list_active(alice)] == ["binance", "okx"]
    assert [k.provider_id for k in store.list_active(alice, "okx")] == ["okx"]
    assert store.list_active(bob) == []
    assert store.has_active(alice, "binance") and not store.has_active(bob, "binance")

    # another user can neither change nor delete it
    assert not store.replace(_row(bob, first))
    assert not store.deactivate(bob, first, datetime.now(UTC))

    assert store.deactivate(alice, first, datetime.now(UTC))
    assert not store.deactivate(alice, first, datetime.now(UTC))
    assert store.get(alice, first) is None
    assert not store.has_active(alice, "binance")
    assert not store.replace(_row(alice, first))
    with engine.connect() as c:
        count = sa.select(sa.func.count()).select_from(exchange_api_keys).where(exchange_api_keys.c.user_id == alice)
        assert c.execute(count).scalar_one() == 2


def test_vault_seals_at_rest_and_needs_the_same_installation_key(engine):
    uid = _user(engine, "carol")
    vault = KeyVault(SqlKeyVaultStore(engine), SecretBox(b"installation-key-one"))
    view = vault.store_key(uid, provider_id=" Binance ", environment="MAINNET", api_key=KEY, api_secret=SECRET)
    assert (view.provider_id, view.environment, view.api_key_hint, view.api_secret_hint) == (
        "binance", "mainnet", "bina...abcd", "bina...wxyz")
    assert vault.has_keys(uid)
    with engine.connect() as c:
        row = c.execute(sa.select(exchange_api_keys).where(exchange_api_keys.c.user_id == uid)).one()
    assert KEY not in str(tuple(row)) and SECRET not in str(tuple(row))

    reopened = KeyVault(SqlKeyVaultStore(engine), SecretBox(b"installation-key-one"))
    creds = reopened.open_credentials(uid, "binance")
    assert (creds.api_key, creds.api_secret, creds.environment) == (KEY, SECRET, "mainnet")

    stranger = KeyVault(SqlKeyVaultStore(engine), SecretBox(b"another-installation"))
    with pytest.raises(ConfigError) as err:
        stranger.open_credentials(uid, "binance")
    assert KEY not in str(err.value) and SECRET not in str(err.value)


def test_vault_has_keys_looks_at_the_live_provider_only(engine):
    uid = _user(engine, "dave")
    store = SqlKeyVaultStore(engine)
    vault = KeyVault(store, SecretBox(b"k"), live_provider="bybit")
    vault.store_key(uid, provider_id="binance", environment="testnet", api_key=KEY, api_secret=SECRET)
    assert not vault.has_keys(uid)
    vault.store_key(uid, provider_id="bybit", environment="testnet", api_key=KEY, api_secret=SECRET)
    assert vault.has_keys(uid)


def test_strategy_store_round_trips_params_exactly_and_filters_by_owner(engine):
    store = SqlConfiguredStrategyStore(engine)
    alice, bob = _user(engine, "erin"), _user(engine, "frank")
    at = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    params = {"symbols": ["BTC_USDT"], "timeframe": "5m", "rsi_period": 21, "overbought": 75.5,
              "allow_short": True, "size_fraction": Decimal("0.123456789012345678901234567")}
    strategy = ConfiguredStrategy(str(uuid.uuid4()), alice, "RSI", "momentum", params, False,
                                  at, at)
    store.add(strategy)
    back = store.get(alice, strategy.id)
    assert back is not None and back.params["size_fraction"] == "0.123456789012345678901234567"  # exact text
    assert {k: v for k, v in back.params.items() if k != "size_fraction"} == {
        k: v for k, v in params.items() if k != "size_fraction"}
    assert store.get(bob, strategy.id) is None and store.list_all(bob) == []
    assert not store.replace(ConfiguredStrategy(strategy.id, bob, "x", "momentum", {}, True, at, at))
    assert not store.delete(bob, strategy.id)

    later = at + timedelta(minutes=5)
    assert store.replace(ConfiguredStrategy(strategy.id, alice, "RSI 2", "momentum", params, True, at, later))
    [listed] = store.list_all(alice)
    assert (listed.name, listed.active, listed.created_at, listed.updated_at) == ("RSI 2", True, at, later)
    assert store.delete(alice, strategy.id) and store.list_all(alice) == []
