"""Authentication as clients meet it: login, bearer tokens, API keys, roles, 401s in each format."""

from __future__ import annotations

import pytest

UNAUTH_FORMATS = [
    ("GET", "/api/v1/account", lambda b: b["error"]["code"] == "UNAUTHORIZED" and "request_id" in b),
    ("GET", "/api/scanners", lambda b: "error" in b and isinstance(b["error"], str)),
    ("GET", "/python/status", lambda b: b["success"] is False and b["error_code"] == "UNAUTHORIZED"),
    ("GET", "/api/engine/status", lambda b: b["status_code"] == 401 and "detail" in b),
    ("GET", "/api/models/", lambda b: "detail" in b and "status_code" not in b),
    ("POST", "/api/v1/orders", lambda b: b["error"]["code"] == "UNAUTHORIZED"),
]


async def test_health_is_public_and_reports_union_of_fields(api):
    r = await api.client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    for key in ("version", "timestamp", "engine_initialized", "engine_running", "resource_health"):
        assert key in body
    assert {"status", "issues", "cpu_percent", "memory_percent"} <= set(body["resource_health"])
    assert body["timestamp"].endswith("Z")


@pytest.mark.parametrize("method,path,shape", UNAUTH_FORMATS)
async def test_request_without_credentials_gets_401_in_surface_format(api, method, path, shape):
    r = await api.client.request(method, path)
    assert r.status_code == 401
    assert shape(r.json()), r.text


async def test_auth_is_checked_before_body_validation(api):
    r = await api.client.post("/api/v1/orders", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    r = await api.client.post("/api/v1/auth/api-keys", json={"unknown": 1})
    assert r.status_code == 401


async def test_login_returns_bearer_token_that_authenticates(api):
    r = await api.client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-123"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "admin" and me.json()["role"] == "admin"


async def test_login_with_wrong_password_is_401(api):
    r = await api.client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope-nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHORIZED"
    r = await api.client.post("/api/v1/auth/login", json={"username": "ghost", "password": "whatever1"})
    assert r.status_code == 401


async def test_garbage_and_tampered_tokens_are_401(api):
    token = await api.token()
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for header in ({"Authorization": "Bearer nonsense"}, {"Authorization": f"Bearer {tampered}"},
                   {"Authorization": "Basic abc"}, {"X-API-Key": "qd_invalid"}):
        r = await api.client.get("/api/v1/auth/me", headers=header)
        assert r.status_code == 401, header


async def test_api_key_created_over_http_works_until_revoked(api_any_db):
    api = api_any_db
    admin = await api.auth()
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "bot"}, headers=admin)
    assert r.status_code == 201
    created = r.json()
    raw = created["api_key"]
    assert created["name"] == "bot" and raw.startswith("qd_")

    me = await api.client.get("/api/v1/auth/me", headers={"X-API-Key": raw})
    assert me.status_code == 200 and me.json()["username"] == "admin"

    listed = (await api.client.get("/api/v1/auth/api-keys", headers=admin)).json()["api_keys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert all("api_key" not in k and raw not in str(k) for k in listed)

    r = await api.client.delete(f"/api/v1/auth/api-keys/{created['id']}", headers=admin)
    assert r.status_code == 200
    me = await api.client.get("/api/v1/auth/me", headers={"X-API-Key": raw})
    assert me.status_code == 401
    assert "revoked" in me.json()["error"]["message"]


async def test_users_cannot_see_or_revoke_each_others_keys(api):
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "a"}, headers=alice)
    key_id = r.json()["id"]
    assert (await api.client.get("/api/v1/auth/api-keys", headers=bob)).json()["api_keys"] == []
    r = await api.client.delete(f"/api/v1/auth/api-keys/{key_id}", headers=bob)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"


async def test_user_management_is_admin_only(api_any_db):
    api = api_any_db
    user = await api.make_user("carol")
    r = await api.client.post("/api/v1/auth/users", json={"username": "x", "password": "password1", "role": "user"},
                              headers=user)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    assert (await api.client.get("/api/v1/auth/users", headers=user)).status_code == 403

    admin = await api.auth()
    names = [u["username"] for u in (await api.client.get("/api/v1/auth/users", headers=admin)).json()["users"]]
    assert names == ["admin", "carol"]
    r = await api.client.post("/api/v1/auth/users", json={"username": "carol", "password": "password1"}, headers=admin)
    assert r.status_code == 409
    carol_id = next(u["id"] for u in (await api.client.get("/api/v1/auth/users", headers=admin)).json()["users"]
                    if u["username"] == "carol")
    assert (await api.client.delete(f"/api/v1/auth/users/{carol_id}", headers=admin)).status_code == 200
    # a deleted user's token stops working at once
    assert (await api.client.get("/api/v1/auth/me", headers=user)).status_code == 401


async def test_create_user_validates_fields(api):
    admin = await api.auth()
    r = await api.client.post("/api/v1/auth/users", json={"username": "dan", "password": "short"}, headers=admin)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"]["field"] == "password"
    r = await api.client.post("/api/v1/auth/users", json={"username": "dan", "password": "longenough", "role": "root"},
                              headers=admin)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "role"
