"""ML backend strategy registry over HTTP: available types, per-user configured strategies, validation."""

from __future__ import annotations

import uuid

import pytest

from kit.app import api_for, make_settings
from quantdesk.engine.strategy import discover_strategies


def _momentum(**params) -> dict:
    return {"name": "My RSI", "type": "momentum",
            "params": {"symbols": ["BTCUSDT", "eth/usdt"], "timeframe": "5m", "rsi_period": 21, **params}}


async def _create(api, headers, body: dict) -> dict:
    r = await api.client.post("/api/strategies/", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/strategies/available"), ("GET", "/api/strategies/"), ("POST", "/api/strategies/"),
    ("GET", f"/api/strategies/{uuid.uuid4()}"), ("PUT", f"/api/strategies/{uuid.uuid4()}"),
    ("DELETE", f"/api/strategies/{uuid.uuid4()}"), ("POST", f"/api/strategies/{uuid.uuid4()}/activate"),
    ("POST", f"/api/strategies/{uuid.uuid4()}/deactivate"),
])
async def test_strategies_without_credentials_are_401(api, method, path):
    r = await api.client.request(method, path, json=_momentum() if method in ("POST", "PUT") else None)
    assert r.status_code == 401 and "detail" in r.json()


async def test_available_lists_every_registered_type_with_its_parameter_schema(api):
    user = await api.make_user("alice")
    r = await api.client.get("/api/strategies/available", headers=user)
    assert r.status_code == 200
    types = {t["name"]: t for t in r.json()}
    assert set(types) == set(discover_strategies())
    momentum = types["momentum"]
    assert momentum["description"] == "RSI momentum: trade RSI extremes" and momentum["kind"] == "technical"
    assert momentum["parameters"]["rsi_period"] == {
        "type": "int", "required": False, "default": 14, "description": "RSI period (bars)",
        "minimum": 2, "maximum": 1000}
    assert momentum["parameters"]["allow_short"]["type"] == "bool"
    assert momentum["parameters"]["size_fraction"]["type"] == "float"
    assert momentum["parameters"]["size_fraction"]["default"] == 1  # a number on the wire
    assert types["orderbook_imbalance"]["kind"] == "orderbook"


async def test_strategy_round_trip_create_get_update_activate_deactivate_delete(api_any_db):
    api = api_any_db
    user = await api.make_user("alice")
    created = await _create(api, user, _momentum(size_fraction="0.25"))
    assert set(created) == {"id", "name", "type", "status", "params", "created_at", "updated_at"}
    assert str(uuid.UUID(created["id"])) == created["id"]
    assert (created["name"], created["type"], created["status"]) == ("My RSI", "momentum", "inactive")
    assert created["params"] == {"symbols": ["BTC_USDT", "ETH_USDT"], "timeframe": "5m", "rsi_period": 21,
                                 "overbought": 70.0, "oversold": 30.0, "allow_short": False, "size_fraction": 0.25}
    sid = created["id"]

    got = await api.client.get(f"/api/strategies/{sid}", headers=user)
    assert got.status_code == 200 and got.json() == created
    listed = (await api.client.get("/api/strategies/", headers=user)).json()
    assert listed == [created]

    r = await api.client.put(f"/api/strategies/{sid}", json={"name": "RSI 25", "params": {"oversold": 25}},
                             headers=user)
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "RSI 25" and updated["params"]["oversold"] == 25.0
    assert updated["params"]["rsi_period"] == 21 and updated["params"]["symbols"] == ["BTC_USDT", "ETH_USDT"]
    assert updated["params"]["size_fraction"] == 0.25
    assert updated["created_at"] == created["created_at"] and updated["updated_at"] >= created["updated_at"]

    r = await api.client.put(f"/api/strategies/{sid}", json={"params": {"rsi_period": None}}, headers=user)
    assert r.json()["params"]["rsi_period"] == 14  # null restores the default

    r = await api.client.post(f"/api/strategies/{sid}/activate", headers=user)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert (await api.client.get(f"/api/strategies/{sid}", headers=user)).json()["status"] == "active"
    r = await api.client.post(f"/api/strategies/{sid}/deactivate", headers=user)
    assert r.status_code == 200 and r.json()["status"] == "inactive"

    r = await api.client.delete(f"/api/strategies/{sid}", headers=user)
    assert r.status_code == 200 and r.json()["id"] == sid and r.json()["message"] == "Strategy deleted successfully"
    r = await api.client.get(f"/api/strategies/{sid}", headers=user)
    assert r.status_code == 404 and r.json() == {"detail": "Strategy not found"}
    assert (await api.client.delete(f"/api/strategies/{sid}", headers=user)).status_code == 404
    assert (await api.client.get("/api/strategies/", headers=user)).json() == []


async def test_strategy_type_change_keeps_symbols_and_timeframe_only(api):
    user = await api.make_user("alice")
    sid = (await _create(api, user, _momentum()))["id"]
    r = await api.client.put(f"/api/strategies/{sid}", json={"type": "SmaCross", "params": {"fast": 5}},
                             headers=user)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "sma_cross"
    assert out["params"] == {"symbols": ["BTC_USDT", "ETH_USDT"], "timeframe": "5m", "fast": 5, "slow": 20,
                             "allow_short": False, "size_fraction": 1}


async def test_strategy_created_active_and_reference_example_body(api):
    user = await api.make_user("alice")
    out = await _create(api, user, {"name": "My New Strategy", "type": "sma_cross",
                                    "params": {"symbols": ["BTC_USDT"], "timeframe": "5m"}})
    assert out["status"] == "inactive" and out["params"]["fast"] == 10
    active = await _create(api, user, {"name": "live", "type": "breakout", "status": "active",
                                       "params": {"symbols": "BTC_USDT"}})
    assert active["status"] == "active" and active["params"]["timeframe"] == "1h"


@pytest.mark.parametrize(("body", "field"), [
    (_momentum(rsi_period="fast"), "params.rsi_period"),
    (_momentum(rsi_period=1), "params.rsi_period"),
    (_momentum(oversold=80), "params.oversold"),
    (_momentum(colour="red"), "params.colour"),
    (_momentum(timeframe="7m"), "params.timeframe"),
    (_momentum(symbols=["BTC_USDT", "NOPE_COIN"]), "params.symbols.1"),
    (_momentum(symbols=42), "params.symbols"),
    ({**_momentum(), "type": "astrology"}, "type"),
    ({**_momentum(), "name": "  "}, "name"),
    ({**_momentum(), "name": "n" * 101}, "name"),
])
async def test_strategy_bad_input_is_400_naming_the_field(api, body, field):
    user = await api.make_user("alice")
    r = await api.client.post("/api/strategies/", json=body, headers=user)
    assert r.status_code == 400, r.text
    out = r.json()
    assert field in out["errors"], out
    assert field.rsplit(".", 1)[-1] in out["detail"] or field in out["detail"]
    assert (await api.client.get("/api/strategies/", headers=user)).json() == []


async def test_strategy_missing_name_is_422_and_bad_update_changes_nothing(api):
    user = await api.make_user("alice")
    r = await api.client.post("/api/strategies/", json={"type": "momentum"}, headers=user)
    assert r.status_code == 422 and "name" in r.json()["errors"]
    created = await _create(api, user, _momentum())
    r = await api.client.put(f"/api/strategies/{created['id']}", json={"params": {"overbought": 500}}, headers=user)
    assert r.status_code == 400 and "params.overbought" in r.json()["errors"]
    assert (await api.client.get(f"/api/strategies/{created['id']}", headers=user)).json() == created


async def test_strategy_activation_needs_a_symbol(api):
    user = await api.make_user("alice")
    sid = (await _create(api, user, {"name": "empty", "type": "momentum"}))["id"]
    r = await api.client.post(f"/api/strategies/{sid}/activate", headers=user)
    assert r.status_code == 400 and "params.symbols" in r.json()["errors"]
    assert (await api.client.get(f"/api/strategies/{sid}", headers=user)).json()["status"] == "inactive"


async def test_strategies_are_private_to_their_owner(api_any_db):
    api = api_any_db
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    admin = await api.auth()
    created = await _create(api, alice, _momentum())
    sid = created["id"]
    for headers in (bob, admin):
        assert (await api.client.get("/api/strategies/", headers=headers)).json() == []
        assert (await api.client.get(f"/api/strategies/{sid}", headers=headers)).status_code == 404
        assert (await api.client.put(f"/api/strategies/{sid}", json={"name": "x"}, headers=headers)).status_code == 404
        assert (await api.client.post(f"/api/strategies/{sid}/activate", headers=headers)).status_code == 404
        assert (await api.client.delete(f"/api/strategies/{sid}", headers=headers)).status_code == 404
    assert (await api.client.get(f"/api/strategies/{sid}", headers=alice)).json() == created


@pytest.mark.parametrize("sid", ["ml-pred-1", str(uuid.uuid4())])
async def test_strategy_unknown_id_is_404(api, sid):
    user = await api.auth()
    r = await api.client.get(f"/api/strategies/{sid}", headers=user)
    assert r.status_code == 404 and r.json() == {"detail": "Strategy not found"}


async def test_strategies_survive_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    async for api in api_for(settings):
        user = await api.make_user("alice")
        created = await _create(api, user, _momentum(size_fraction="0.123456789"))
        await api.client.post(f"/api/strategies/{created['id']}/activate", headers=user)
    async for api in api_for(settings):
        user = await api.auth("alice", "user-pass-123")
        [back] = (await api.client.get("/api/strategies/", headers=user)).json()
        assert back["status"] == "active" and back["params"]["size_fraction"] == 0.123456789
        assert {k: back[k] for k in ("id", "name", "type", "created_at")} == {
            k: created[k] for k in ("id", "name", "type", "created_at")}
