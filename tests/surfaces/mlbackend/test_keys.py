"""ML backend key vault over HTTP: store, list (hints only), update, soft delete, privacy, encryption at rest."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from kit.app import api_for, make_settings
from quantdesk.adapters.db.key_vault_tables import exchange_api_keys
from quantdesk.core.errors import NotFoundError

API_KEY = "AKIAbinanceKEY0000000000000000000000001234"
API_SECRET = "SECRETwxyz0000000000000000000000000005678"
NEW_KEY = "NEWKbinanceKEY00000000000000000000000009876"
NEW_SECRET = "NEWSsecret000000000000000000000000000004321"


def _body(**overrides) -> dict:
    body = {"provider_id": "binance", "environment": "testnet", "api_key": API_KEY, "api_secret": API_SECRET,
            "label": "My Trading Account"}
    body.update(overrides)
    return body


async def _store(api, headers, **overrides) -> str:
    r = await api.client.post("/api/keys/", json=_body(**overrides), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["message"] == "API key stored successfully"
    return body["id"]


async def _list(api, headers) -> list[dict]:
    r = await api.client.get("/api/keys/", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/keys/"), ("POST", "/api/keys/"), ("PUT", f"/api/keys/{uuid.uuid4()}"),
    ("DELETE", f"/api/keys/{uuid.uuid4()}"),
])
async def test_keys_without_credentials_are_401(api, method, path):
    r = await api.client.request(method, path, json=_body() if method in ("POST", "PUT") else None)
    assert r.status_code == 401
    assert "detail" in r.json()
    assert API_KEY not in r.text and API_SECRET not in r.text


async def test_key_store_then_list_shows_hints_only(api_any_db):
    api = api_any_db
    user = await api.make_user("alice")
    assert await _list(api, user) == []
    key_id = await _store(api, user)
    assert str(uuid.UUID(key_id)) == key_id

    r = await api.client.get("/api/keys/", headers=user)
    [item] = r.json()
    assert set(item) == {"id", "provider_id", "provider_name", "environment", "label", "api_key_hint",
                         "api_secret_hint", "created_at"}
    assert item["id"] == key_id
    assert (item["provider_id"], item["provider_name"], item["environment"]) == ("binance", "Binance", "testnet")
    assert item["label"] == "My Trading Account"
    assert item["api_key_hint"] == "AKIA...1234" and item["api_secret_hint"] == "SECR...5678"
    assert item["created_at"].endswith("Z")
    assert API_KEY not in r.text and API_SECRET not in r.text
    # the un-slashed path answers too (no redirect)
    assert (await api.client.get("/api/keys", headers=user)).json() == [item]


async def test_key_update_keeps_omitted_values_and_changes_hints(api_any_db):
    api = api_any_db
    user = await api.make_user("alice")
    key_id = await _store(api, user)
    vault = api.app.state.key_vault
    uid = vault_user_id(api, "alice")

    r = await api.client.put(f"/api/keys/{key_id}", json={"label": "Renamed"}, headers=user)
    assert r.status_code == 200 and r.json() == {"message": "API key updated successfully"}
    [item] = await _list(api, user)
    assert item["label"] == "Renamed" and item["api_key_hint"] == "AKIA...1234" and item["api_secret_hint"] == "SECR...5678"

    r = await api.client.put(f"/api/keys/{key_id}", json={"api_key": NEW_KEY}, headers=user)
    assert r.status_code == 200, r.text
    assert API_KEY not in r.text and NEW_KEY not in r.text
    [item] = await _list(api, user)
    assert item["label"] == "Renamed"
    assert item["api_key_hint"] == "NEWK...9876" and item["api_secret_hint"] == "SECR...5678"
    creds = vault.open_credentials(uid, "binance")
    assert (creds.api_key, creds.api_secret) == (NEW_KEY, API_SECRET)

    r = await api.client.put(f"/api/keys/{key_id}", json={"api_secret": NEW_SECRET}, headers=user)
    assert r.status_code == 200, r.text
    [item] = await _list(api, user)
    assert item["api_key_hint"] == "NEWK...9876" and item["api_secret_hint"] == "NEWS...4321"
    creds = vault.open_credentials(uid, "binance")
    assert (creds.api_key, creds.api_secret) == (NEW_KEY, NEW_SECRET)


def vault_user_id(api, username: str) -> int:
    with api.app.state.runtime.engine.connect() as c:
        return c.execute(sa.text("SELECT id FROM users WHERE username = :u"), {"u": username}).scalar_one()


async def test_key_delete_is_soft_then_404_and_unlisted(api_any_db):
    api = api_any_db
    user = await api.make_user("alice")
    kept = await _store(api, user, provider_id="bybit", label="keep")
    gone = await _store(api, user)

    r = await api.client.delete(f"/api/keys/{gone}", headers=user)
    assert r.status_code == 200 and r.json() == {"message": "API key deleted successfully"}
    assert [k["id"] for k in await _list(api, user)] == [kept]
    r = await api.client.delete(f"/api/keys/{gone}", headers=user)
    assert r.status_code == 404 and r.json() == {"detail": "API key not found"}
    r = await api.client.put(f"/api/keys/{gone}", json={"label": "x"}, headers=user)
    assert r.status_code == 404 and r.json() == {"detail": "API key not found"}
    with pytest.raises(NotFoundError):
        api.app.state.key_vault.open_credentials(vault_user_id(api, "alice"), "binance")

    # soft: the (sealed) row stays, marked inactive with when it was deleted
    with api.app.state.runtime.engine.connect() as c:
        row = c.execute(sa.select(exchange_api_keys).where(exchange_api_keys.c.id == gone)).one()
    assert row.active is False and row.deleted_at is not None


@pytest.mark.parametrize("key_id", ["not-a-uuid", str(uuid.uuid4())])
async def test_key_unknown_id_is_404(api, key_id):
    user = await api.auth()
    assert (await api.client.put(f"/api/keys/{key_id}", json={"label": "x"}, headers=user)).status_code == 404
    assert (await api.client.delete(f"/api/keys/{key_id}", headers=user)).status_code == 404


async def test_keys_are_private_to_their_owner(api_any_db):
    api = api_any_db
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    admin = await api.auth()
    alice_key = await _store(api, alice)
    bob_key = await _store(api, bob, provider_id="okx", api_key=NEW_KEY, api_secret=NEW_SECRET, label="bob")

    assert [k["id"] for k in await _list(api, bob)] == [bob_key]
    assert await _list(api, admin) == []  # admins do not see users' keys either
    for headers in (bob, admin):
        r = await api.client.put(f"/api/keys/{alice_key}", json={"api_key": NEW_KEY}, headers=headers)
        assert r.status_code == 404 and r.json() == {"detail": "API key not found"}
        r = await api.client.delete(f"/api/keys/{alice_key}", headers=headers)
        assert r.status_code == 404
    [item] = await _list(api, alice)
    assert item["id"] == alice_key and item["api_key_hint"] == "AKIA...1234"


async def test_database_row_holds_no_plaintext(api_any_db):
    api = api_any_db
    user = await api.make_user("alice")
    key_id = await _store(api, user)
    await api.client.put(f"/api/keys/{key_id}", json={"api_secret": NEW_SECRET}, headers=user)
    with api.app.state.runtime.engine.connect() as c:
        rows = c.execute(sa.select(exchange_api_keys)).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    for plain in (API_KEY, API_SECRET, NEW_SECRET):
        assert plain not in stored
    assert rows[0].api_key_encrypted.startswith("enc:v1:") and rows[0].api_secret_encrypted.startswith("enc:v1:")


@pytest.mark.parametrize(("overrides", "field", "status"), [
    ({"provider_id": "mtgox"}, "provider_id", 400),
    ({"environment": "production"}, "environment", 400),
    ({"api_key": "short-key"}, "api_key", 400),
    ({"api_key": "   "}, "api_key", 400),
    ({"api_secret": ""}, "api_secret", 400),
    ({"api_secret": "has spaces in the middle of it"}, "api_secret", 400),
    ({"api_secret": "x" * 513}, "api_secret", 400),
    ({"label": "L" * 101}, "label", 400),
    ({"api_key": None}, "api_key", 422),
    ({"extra": "field"}, "extra", 422),
])
async def test_key_bad_input_is_4xx_naming_the_field(api, overrides, field, status):
    user = await api.make_user("alice")
    body = _body(**overrides)
    if overrides.get("api_key", "") is None:
        del body["api_key"]
    r = await api.client.post("/api/keys/", json=body, headers=user)
    assert r.status_code == status, r.text
    out = r.json()
    assert field in out["detail"] and field in out["errors"]
    for secret in (body.get("api_key"), body.get("api_secret")):
        if secret and secret.strip() and len(secret) > 3:
            assert secret not in r.text
    assert await _list(api, user) == []


async def test_key_update_bad_input_is_400_and_changes_nothing(api):
    user = await api.make_user("alice")
    key_id = await _store(api, user)
    r = await api.client.put(f"/api/keys/{key_id}", json={"api_key": "NEWK-valid-length-key-0000", "api_secret": "tiny"},
                             headers=user)
    assert r.status_code == 400 and "api_secret" in r.json()["errors"]
    [item] = await _list(api, user)
    assert item["api_key_hint"] == "AKIA...1234"


async def test_keys_still_decrypt_after_restart_on_same_database_and_key_file(tmp_path):
    settings = make_settings(tmp_path)
    async for api in api_for(settings):
        user = await api.make_user("alice")
        key_id = await _store(api, user)
    async for api in api_for(settings):
        user = await api.auth("alice", "user-pass-123")
        [item] = await _list(api, user)
        assert item["id"] == key_id and item["api_key_hint"] == "AKIA...1234"
        creds = api.app.state.key_vault.open_credentials(vault_user_id(api, "alice"), "binance",
                                                         environment="testnet")
        assert (creds.key_id, creds.api_key, creds.api_secret) == (key_id, API_KEY, API_SECRET)
        assert API_KEY not in repr(creds) and API_SECRET not in repr(creds)


async def test_open_credentials_picks_provider_and_environment(api):
    user = await api.make_user("alice")
    await _store(api, user, environment="testnet")
    live = await _store(api, user, environment="mainnet", api_key=NEW_KEY, api_secret=NEW_SECRET)
    vault = api.app.state.key_vault
    uid = vault_user_id(api, "alice")
    assert vault.open_credentials(uid, "binance", environment="mainnet").key_id == live
    assert vault.open_credentials(uid, "binance", environment="testnet").api_key == API_KEY
    with pytest.raises(NotFoundError):
        vault.open_credentials(uid, "okx")
    with pytest.raises(NotFoundError):
        vault.open_credentials(vault_user_id(api, "admin"), "binance")


# ---------------------------------------------------------------- the Scalper's live-trading gate

async def test_scalper_live_start_without_keys_needs_stored_keys(api):
    user = await api.make_user("alice")
    r = await api.client.post("/api/v1/bot/start", json={"paper_trading": False}, headers=user)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "needs stored exchange API keys" in error["message"]
    assert error["details"]["field"] == "paper_trading"


async def test_scalper_live_start_with_keys_for_another_exchange_still_needs_keys(api):
    user = await api.make_user("alice")
    await _store(api, user, provider_id="bybit")
    r = await api.client.post("/api/v1/bot/start", json={"paper_trading": False}, headers=user)
    assert r.status_code == 400 and "needs stored exchange API keys" in r.json()["error"]["message"]


async def test_scalper_live_start_with_keys_is_refused_because_live_trading_is_off(api):
    user = await api.make_user("alice")
    key_id = await _store(api, user)
    r = await api.client.post("/api/v1/bot/start", json={"paper_trading": False}, headers=user)
    assert r.status_code == 400, r.text
    assert "live trading is turned off" in r.json()["error"]["message"]
    assert API_KEY not in r.text and API_SECRET not in r.text
    status = (await api.client.get("/api/v1/bot/status", headers=user)).json()
    assert status["status"] == "stopped" and status["trading_enabled"] is False

    # another user's keys do not count; a deleted key no longer counts
    bob = await api.make_user("bob")
    r = await api.client.post("/api/v1/bot/start", json={"paper_trading": False}, headers=bob)
    assert "needs stored exchange API keys" in r.json()["error"]["message"]
    await api.client.delete(f"/api/keys/{key_id}", headers=user)
    r = await api.client.post("/api/v1/bot/start", json={"paper_trading": False}, headers=user)
    assert "needs stored exchange API keys" in r.json()["error"]["message"]
