"""Bad input always gets a clear 4xx in the owning surface's format, never a 500."""

from __future__ import annotations

import pytest


@pytest.fixture
async def admin(api):
    return await api.auth()


async def test_malformed_json_is_400_naming_the_body(api, admin):
    r = await api.client.post("/api/v1/auth/api-keys", content=b'{"name": ', headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and "JSON" in err["message"]


async def test_wrong_type_names_the_field(api, admin):
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": 123}, headers=admin)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "name"


async def test_unknown_field_is_refused(api, admin):
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "x", "colour": "red"}, headers=admin)
    assert r.status_code == 400
    assert "colour" in r.json()["error"]["message"]


async def test_missing_field_is_named(api):
    r = await api.client.post("/api/v1/auth/login", json={"username": "admin"})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "password"


async def test_ten_megabyte_body_is_413_and_nothing_changes(api, admin):
    big = b'{"name": "' + b"x" * (10 * 1000 * 1000) + b'"}'
    r = await api.client.post("/api/v1/auth/api-keys", content=big, headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert (await api.client.get("/api/v1/auth/api-keys", headers=admin)).json()["api_keys"] == []


async def test_chunked_body_over_limit_is_413(api, admin):
    async def chunks():
        for _ in range(40):
            yield b"x" * 64 * 1024

    r = await api.client.post("/api/v1/auth/api-keys", content=chunks(), headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 413


async def test_invalid_utf8_is_4xx(api, admin):
    r = await api.client.post("/api/v1/auth/api-keys", content=b'{"name": "\xff\xfe"}',
                              headers={**admin, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_non_numeric_path_id_is_4xx(api, admin):
    r = await api.client.delete("/api/v1/auth/api-keys/abc", headers=admin)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "key_id"


async def test_unknown_route_is_404_in_surface_format(api, admin):
    r = await api.client.get("/api/v1/nothing-here", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await api.client.get("/python/nothing-here", headers=admin)
    assert r.status_code == 404 and r.json()["success"] is False


async def test_unexpected_exception_is_500_in_surface_format_without_traceback(api, admin):
    @api.app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret internals")

    r = await api.client.get("/api/v1/_boom", headers=admin)
    assert r.status_code == 500
    body = r.json()
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert body["request_id"] == r.headers["x-request-id"]
